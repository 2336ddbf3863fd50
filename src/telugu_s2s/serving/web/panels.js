// The live side panels: sentiment gauge and history, topic, emotion bars, interruption
// stats, the latency table, level meters and error messages.

import { formatSigned } from "./transcript.js";

const SVG = "http://www.w3.org/2000/svg";
const HISTORY_TURNS = 24;

// Per-frame pipeline stages in /stats `latency_ms` (serving/metrics.py COMPONENTS), then the
// whole-tick figures.
const STAGES = [
  ["receive", "Receive", "parse and re-chunk mic audio"],
  ["vad", "Speech detection", "silero-vad"],
  ["encode", "Codec encoder", "audio → tokens"],
  ["context", "Context memory", "last 10 turns"],
  ["s2s", "S2S transformer", "temporal + depth step"],
  ["decode", "Codec decoder", "tokens → audio"],
  ["send", "Send", "write a frame to the socket"],
];
const TICK_STAGES = [
  ["tick", "Engine tick", "one batched step, all sessions"],
  ["queue", "Queueing", "frame arrival → step"],
];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

export class AnalysisView {
  constructor({ gauge, gaugeText, history, topic, emotions }) {
    Object.assign(this, { gauge, gaugeText, history, topic, emotions });
    this.sentiments = [];
    this.topics = new Map();
    this.#drawGauge(null);
    this.#drawHistory();
  }

  clear() {
    this.sentiments = [];
    this.topics.clear();
    this.#drawGauge(null);
    this.#drawHistory();
    this.topic.textContent = "—";
    this.emotions.replaceChildren(el("li", { class: "none" }, "—"));
  }

  /** A `turn` event (or a stored turn of a resumed session). */
  addTurn(record) {
    if (typeof record.sentiment === "number") {
      this.sentiments = [...this.sentiments, record.sentiment].slice(-HISTORY_TURNS);
      this.#drawGauge(record.sentiment);
      this.#drawHistory();
    }
    if (record.topic) {
      this.topics.set(record.topic, (this.topics.get(record.topic) ?? 0) + 1);
      const total = [...this.topics.values()].reduce((a, b) => a + b, 0);
      const [voted, count] = [...this.topics].sort((a, b) => b[1] - a[1] || (b[0] === record.topic) - (a[0] === record.topic))[0];
      // the server's session topic weighs each turn by its confidence; stored turns lack it
      const top = record.dialog_topic ?? voted;
      this.topic.textContent = record.topic === top ? record.topic : `${record.topic} (mostly ${top})`;
      this.topic.title = record.dialog_topic ? `session topic: ${top}` : `${top}: ${count} of ${total} turns`;
    }
    const emotions = Object.keys(record.emotions ?? {}).length
      ? record.emotions
      : record.emotion ? { [record.emotion]: 1 } : null;
    if (emotions) this.#drawEmotions(emotions);
  }

  #drawGauge(value) {
    const cx = 60, cy = 62, r = 48;
    const point = (v, radius) => {
      const angle = Math.PI * (1 - (v + 1) / 2); // -1 -> left, +1 -> right
      return [cx + radius * Math.cos(angle), cy - radius * Math.sin(angle)];
    };
    const arc = (from, to, color) => {
      const [x0, y0] = point(from, r);
      const [x1, y1] = point(to, r);
      return svg("path", { d: `M${x0} ${y0} A${r} ${r} 0 0 1 ${x1} ${y1}`, stroke: color,
        "stroke-width": 11, fill: "none" });
    };
    const parts = [arc(-1, -0.34, "#dc2626"), arc(-0.32, 0.32, "#d4a017"), arc(0.34, 1, "#16a34a")];
    if (value !== null) {
      const [x, y] = point(Math.max(-1, Math.min(1, value)), r - 14);
      parts.push(svg("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: "currentColor", "stroke-width": 3, "stroke-linecap": "round" }));
    }
    parts.push(svg("circle", { cx, cy, r: 4.5, fill: "currentColor" }));
    this.gauge.replaceChildren(...parts);
    this.gaugeText.textContent = value === null ? "No turns yet" : `${moodWord(value)} ${formatSigned(value)}`;
  }

  #drawHistory() {
    const w = 240, h = 48, mid = h / 2, values = this.sentiments;
    const parts = [svg("line", { x1: 0, y1: mid, x2: w, y2: mid, stroke: "#9aa1b2", "stroke-dasharray": "3 3", "stroke-width": 1 })];
    const x = (i) => (values.length === 1 ? w / 2 : 8 + (i * (w - 16)) / (values.length - 1));
    const y = (v) => mid - v * (mid - 6);
    if (values.length > 1) {
      const points = values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
      parts.push(svg("polyline", { points, fill: "none", stroke: "var(--accent)", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    }
    values.forEach((v, i) => parts.push(svg("circle", { cx: x(i), cy: y(v), r: 2.5, fill: v >= 0 ? "#16a34a" : "#dc2626" })));
    this.history.replaceChildren(...parts);
    this.history.setAttribute("aria-label", values.length
      ? `Sentiment over the last ${values.length} turns: ${values.map(formatSigned).join(", ")}`
      : "Sentiment over the turns: none yet");
  }

  #drawEmotions(emotions) {
    const rows = Object.entries(emotions).sort((a, b) => b[1] - a[1]).slice(0, 6);
    this.emotions.replaceChildren(...rows.map(([name, p]) => {
      const pct = Math.round(100 * p);
      const bar = el("span", { class: "bar", style: `width: ${pct}%` });
      return el("li", { "aria-label": `${name} ${pct} percent` },
        el("span", { class: "name" }, name), el("span", { class: "track" }, bar), el("span", { class: "pct" }, `${pct}%`));
    }));
  }
}

function moodWord(value) {
  return value > 0.33 ? "Positive" : value < -0.33 ? "Negative" : "Neutral";
}

export class InterruptionView {
  constructor(root) {
    const get = (id) => root.querySelector(`#${id}`);
    this.fields = { count: get("int-count"), vad: get("int-vad"), manual: get("int-manual"),
      false: get("int-false"), delay: get("int-delay"), heard: get("int-heard") };
    this.clear();
  }

  clear() {
    this.earlier = { vad: 0, manual: 0, false: 0 }; // earlier connections of this page visit
    this.current = { vad: 0, manual: 0, false: 0 }; // the server counts per connection
    this.fields.delay.textContent = this.fields.heard.textContent = "–";
    this.#show();
  }

  /** A reconnect: the server starts counting again from zero. */
  newConnection() {
    for (const key of Object.keys(this.earlier)) this.earlier[key] += this.current[key];
    this.current = { vad: 0, manual: 0, false: 0 };
  }

  /** An `interrupted` event that cut a reply. */
  cut({ reason, heard_ms: heardMs, delay_ms: delayMs }) {
    if (reason in this.current) this.current[reason]++;
    this.fields.heard.textContent = `${(heardMs / 1000).toFixed(1)} s`;
    if (this.fields.delay.textContent === "–") this.fields.delay.textContent = `${Math.round(delayMs)} ms`;
    this.#show();
  }

  /** The connection's figures from a `stats` event (they include false alarms). */
  summary(interruptions) {
    if (!interruptions) return;
    const byReason = interruptions.by_reason ?? {};
    this.current = { vad: byReason.vad ?? 0, manual: byReason.manual ?? 0,
      false: interruptions.false_interruptions ?? 0 };
    const delay = interruptions.delay_ms;
    if (delay?.count) this.fields.delay.textContent = `${Math.round(delay.p50)} ms`;
    this.#show();
  }

  #show() {
    const total = (key) => this.earlier[key] + this.current[key];
    this.fields.count.textContent = total("vad") + total("manual");
    this.fields.vad.textContent = total("vad");
    this.fields.manual.textContent = total("manual");
    this.fields.false.textContent = total("false");
  }
}

export class LatencyView {
  constructor(body) {
    this.body = body;
  }

  /** `latency_ms` from GET /stats, plus the page's own playback buffer depth. */
  render(latency, playbackMs) {
    const row = ([key, name, what], stats, cls = "") => el("tr", cls ? { class: cls } : {},
      el("td", {}, name, el("span", { class: "what" }, what)),
      el("td", {}, stats ? stats.p50.toFixed(1) : "–"), el("td", {}, stats ? stats.p95.toFixed(1) : "–"));
    const measured = STAGES.filter(([key]) => latency[key]?.count);
    if (!measured.length) return;
    const total = (q) => measured.reduce((sum, [key]) => sum + latency[key][q], 0);
    const rows = measured.map((stage) => row(stage, latency[stage[0]]));
    rows.push(row(["total", "Pipeline total", "sum of the stages above"], { p50: total("p50"), p95: total("p95") }, "total"));
    for (const stage of TICK_STAGES) if (latency[stage[0]]?.count) rows.push(row(stage, latency[stage[0]]));
    if (playbackMs !== null) {
      rows.push(row(["buffer", "Playback buffer", "this page's jitter buffer, now"], { p50: playbackMs, p95: playbackMs }));
    }
    this.body.replaceChildren(...rows);
  }
}

/** A level meter: RMS -> a -60..0 dBFS bar. */
export function setMeter(meter, rmsLevel) {
  const db = 20 * Math.log10(Math.max(rmsLevel, 1e-6));
  const pct = Math.round(Math.max(0, Math.min(100, ((db + 60) / 60) * 100)));
  meter.firstElementChild.style.width = `${pct}%`;
  if (Math.abs(pct - Number(meter.getAttribute("aria-valuenow"))) >= 10) meter.setAttribute("aria-valuenow", pct);
}

const FRIENDLY = {
  unknown_speaker: "That voice is not available on this server.",
  session_busy: "This session is open in another tab or window.",
  unauthorized: "This server needs an access token: add ?token=… to the page address.",
  engine_error: "The speech model failed on this frame. The conversation goes on.",
  too_large: "A message was too large for the server.",
  bad_session: "That session ID is not valid: use letters, digits, '_' or '-'.",
  bad_config: "The server refused a setting.",
  microphone: "The microphone is not available.",
};

export class ErrorView {
  constructor(root) {
    this.root = root;
  }

  show(code, message) {
    const existing = [...this.root.children].find((node) => node.dataset.code === code);
    existing?.remove();
    const close = el("button", { type: "button", "aria-label": "Dismiss this message" }, "×");
    const body = el("div", {}, el("strong", {}, FRIENDLY[code] ?? "Something went wrong."),
      el("span", {}, message), el("span", { class: "code" }, ` (${code})`));
    const item = el("div", { class: "error" }, body, close);
    item.dataset.code = code;
    close.addEventListener("click", () => item.remove());
    this.root.append(item);
    setTimeout(() => item.remove(), 12000);
  }

  clear() {
    this.root.replaceChildren();
  }
}
