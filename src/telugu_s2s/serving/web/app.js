// The page controller: wires the controls, the socket, the audio and the views together.
// `window.__s2s` exposes a few read-only hooks for the browser end-to-end test.

import { AudioPipeline } from "./audio.js";
import { Connection } from "./connection.js";
import { AnalysisView, ErrorView, InterruptionView, LatencyView, setMeter } from "./panels.js";
import { Transcript } from "./transcript.js";
import { VOICES, describeVoice } from "./voices.js";

const $ = (selector) => document.querySelector(selector);
const STATS_POLL_MS = 2000;
const CUT_TIMEOUT_MS = 2000; // stop waiting for the server's `interrupted` after this
const LAST_SESSION_KEY = "telugu-s2s.last-session";
const TOKEN_KEY = "telugu-s2s.token";

const query = new URLSearchParams(location.search);
const token = takeToken();
const state = {
  speaker: query.get("speaker") ?? "priya",
  mode: query.get("mode") ?? "stream",
  style: "auto",
  vadThreshold: 0.5,
  session: query.get("session") ?? null, // resumed on the next connect
  shownSession: null, // the session whose history the transcript shows
  cutting: false, // a local interrupt: drop reply audio until the server confirms the cut
  cutTimer: null,
  output: { rms: 0, peak: 0, max: 0, playing: false, queuedMs: 0 },
  input: { rms: 0, max: 0 },
  events: [],
  status: "idle",
  received: { chunks: [], bytes: 0 }, // the assistant's last 60 s of PCM, for the e2e test
};
const RECEIVED_BYTES = 60 * 16000 * 2;

const errors = new ErrorView($("#errors"));
const transcript = new Transcript($("#transcript"), $("#transcript-empty"));
const analysis = new AnalysisView({ gauge: $("#sentiment-gauge"), gaugeText: $("#sentiment-text"),
  history: $("#sentiment-history"), topic: $("#topic"), emotions: $("#emotions") });
const interruptions = new InterruptionView($("#interruption-stats"));
const latency = new LatencyView($("#latency-rows"));

const audio = new AudioPipeline({
  onChunk: (pcm) => connection.sendAudio(pcm),
  onInputLevel: ({ rms }) => {
    state.input.rms = rms;
    state.input.max = Math.max(state.input.max, rms);
  },
  onOutputLevel: (level) => {
    Object.assign(state.output, level);
    state.output.max = Math.max(state.output.max, level.rms);
  },
});

const connection = new Connection({
  onReady,
  onEvent,
  onAudio: (pcm) => {
    keepReceived(pcm.slice(0)); // a copy: playing transfers (detaches) the buffer
    if (!state.cutting) audio.play(pcm);
  },
  onStatus: showStatus,
});

// The server's access token, when it has one: from the page's `#token=` (a fragment never
// reaches the server, so it cannot land in a log) or a legacy `?token=`, kept for this tab
// only, and wiped from the address bar. It goes in the first WebSocket message and in an
// Authorization header, never in a URL.
function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token") ?? query.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    fragment.delete("token");
    query.delete("token");
    const hash = fragment.toString();
    const search = query.toString();
    history.replaceState(null, "", location.pathname + (search ? `?${search}` : "") + (hash ? `#${hash}` : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function keepReceived(pcm) {
  const received = state.received;
  received.chunks.push(pcm);
  received.bytes += pcm.byteLength;
  while (received.bytes > RECEIVED_BYTES) received.bytes -= received.chunks.shift().byteLength;
}

// The received PCM16LE as base64: one string crosses the test's bridge far faster than numbers.
function receivedBase64() {
  let binary = "";
  for (const chunk of state.received.chunks) {
    const bytes = new Uint8Array(chunk);
    for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function authorized() {
  return token ? { headers: { Authorization: `Bearer ${token}` } } : {};
}

// ---------------------------------------------------------------- controls

function buildVoicePicker() {
  const list = $("#voice-list");
  for (const voice of VOICES) {
    const input = Object.assign(document.createElement("input"), {
      type: "radio", name: "voice", value: voice.id, id: `voice-${voice.id}`, checked: voice.id === state.speaker,
    });
    input.setAttribute("aria-label", describeVoice(voice));
    const card = document.createElement("span");
    card.className = "card";
    card.innerHTML = `<span class="name">${voice.name} <span lang="te">${voice.telugu}</span></span>
      <span class="meta">${voice.gender === "male" ? "Male" : "Female"} · ${voice.age}</span>
      <span class="meta">${voice.style}</span>
      <span class="meta">pitch ~${voice.pitchHz} Hz</span>`;
    const label = document.createElement("label");
    label.className = "voice";
    label.title = describeVoice(voice);
    label.append(input, card);
    list.append(label);
  }
  list.addEventListener("change", (event) => setPreference("speaker", event.target.value));
}

function setPreference(key, value) {
  const field = { speaker: "speaker", mode: "mode", style: "style", vad_threshold: "vadThreshold" }[key];
  state[field] = value;
  if (key === "speaker" || key === "mode") connection.params[key] = value; // for reconnects
  connection.sendJson({ type: "config", [key]: value }); // live when connected; else used on connect
}

function bindControls() {
  buildVoicePicker();
  $(`input[name=mode][value=${state.mode}]`).checked = true;
  $("#mode-group").addEventListener("change", (e) => setPreference("mode", e.target.value));
  $("#style-group").addEventListener("change", (e) => setPreference("style", e.target.value));
  const slider = $("#vad-threshold");
  slider.addEventListener("input", () => ($("#vad-value").textContent = Number(slider.value).toFixed(2)));
  slider.addEventListener("change", () => setPreference("vad_threshold", Number(slider.value)));

  $("#start").addEventListener("click", () => (audio.running ? stop() : start()));
  $("#interrupt").addEventListener("click", interrupt);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.repeat) {
      event.preventDefault();
      interrupt();
    }
  });
  $("#copy-session").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(connection.params.session ?? "");
      $("#copy-session").textContent = "Copied";
    } catch {
      $("#copy-session").textContent = "Select it to copy";
    }
    setTimeout(() => ($("#copy-session").textContent = "Copy"), 1500);
  });
  $("#resume-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#resume-id").value.trim();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return errors.show("bad_session", `“${id}” is not a session ID.`);
    switchSession(id);
  });
  $("#new-session").addEventListener("click", () => switchSession(null));
  const last = localStorage.getItem(LAST_SESSION_KEY);
  if (last && !state.session) $("#resume-id").placeholder = last;
}

async function start() {
  const button = $("#start");
  button.disabled = true;
  try {
    await audio.start();
  } catch (error) {
    errors.show("microphone", error.message);
    button.disabled = false;
    return;
  }
  button.disabled = false;
  button.setAttribute("aria-pressed", "true");
  $("#start-label").textContent = "Stop";
  connect();
}

function connect() {
  // Resuming another session: its stored voice and mode win (the page adopts them on ready).
  const resuming = state.session && state.session !== state.shownSession;
  connection.open({ speaker: resuming ? null : state.speaker, mode: resuming ? null : state.mode,
    session: state.session }, token);
}

async function stop() {
  connection.close();
  await audio.stop();
  state.output = { rms: 0, peak: 0, max: state.output.max, playing: false, queuedMs: 0 };
  $("#start").setAttribute("aria-pressed", "false");
  $("#start-label").textContent = "Start talking";
  $("#interrupt").disabled = true;
}

function switchSession(id) {
  state.session = id;
  if (!audio.running) return start();
  connection.close();
  connect();
}

function interrupt() {
  if (!connection.isOpen) return;
  state.cutting = true;
  clearTimeout(state.cutTimer);
  state.cutTimer = setTimeout(() => (state.cutting = false), CUT_TIMEOUT_MS);
  audio.flush(); // locally first: the reply stops within a fade, before the server answers
  connection.sendJson({ type: "interrupt" });
}

// ---------------------------------------------------------------- server events

async function onReady(ready) {
  state.session = ready.session;
  localStorage.setItem(LAST_SESSION_KEY, ready.session);
  $("#session-id").textContent = ready.session;
  $("#copy-session").hidden = false;
  $("#interrupt").disabled = false;
  if (state.shownSession === ready.session) {
    // A reconnect of the session on screen: the page's settings still apply.
    interruptions.newConnection();
    connection.sendJson({ type: "config", speaker: state.speaker, mode: state.mode,
      style: state.style, vad_threshold: state.vadThreshold });
    return;
  }
  state.shownSession = ready.session;
  adopt("speaker", ready.speaker, `input[name=voice][value=${ready.speaker}]`);
  adopt("mode", ready.mode, `input[name=mode][value=${ready.mode}]`);
  if (ready.resumed) {
    // A resumed session keeps its stored preferences and shows its earlier turns.
    adopt("style", ready.style, `input[name=style][value=${ready.style}]`);
    await showHistory(ready.session);
  } else {
    resetViews();
    connection.sendJson({ type: "config", style: state.style, vad_threshold: state.vadThreshold });
  }
}

function adopt(field, value, selector) {
  if (!value) return;
  state[field] = value;
  const input = $(selector);
  if (input) input.checked = true;
}

async function showHistory(session) {
  resetViews();
  try {
    const response = await fetch(`/sessions/${encodeURIComponent(session)}`, authorized());
    if (!response.ok) return;
    const info = await response.json();
    const prefs = info.preferences ?? {};
    if (typeof prefs.vad_threshold === "number") {
      state.vadThreshold = prefs.vad_threshold;
      $("#vad-threshold").value = prefs.vad_threshold;
      $("#vad-value").textContent = prefs.vad_threshold.toFixed(2);
    }
    for (const turn of info.turns ?? []) {
      transcript.addPastTurn(turn);
      analysis.addTurn(turn);
    }
  } catch (error) {
    errors.show("history", `The earlier turns could not be loaded: ${error.message}`);
  }
}

function resetViews() {
  transcript.clear();
  analysis.clear();
  interruptions.clear();
}

function onEvent(event) {
  state.events.push(event);
  if (state.events.length > 500) state.events.splice(0, 100);
  switch (event.type) {
    case "text":
      return transcript.text(event);
    case "interrupted":
      state.cutting = false;
      clearTimeout(state.cutTimer);
      audio.flush(); // drop whatever of the cut reply is still buffered here
      if (event.reason === "vad" || transcript.turn?.assistant) interruptions.cut(event);
      return transcript.interrupted(event);
    case "turn":
      transcript.endTurn(event);
      return analysis.addTurn(event);
    case "stats":
      return interruptions.summary(event.interruptions);
    case "error":
      // A reconnect can race the old connection's teardown; the next retry gets through.
      if (event.code === "session_busy" && !connection.ready && connection.attempt < 3) return;
      return errors.show(event.code, event.message);
  }
}

function showStatus(status, detail) {
  state.status = status;
  const words = {
    connecting: "Connecting…",
    open: "Connected · listening",
    reconnecting: `Connection lost · retrying in ${Math.ceil((detail?.inMs ?? 0) / 1000)} s`,
    closed: "Not connected",
    failed: "Connection refused",
  };
  $("#status-dot").dataset.state = status;
  $("#status-text").textContent = words[status] ?? status;
  $("#interrupt").disabled = status !== "open";
}

// ---------------------------------------------------------------- periodic updates

function drawMeters() {
  setMeter($("#input-meter"), audio.running ? state.input.rms : 0);
  setMeter($("#output-meter"), audio.running ? state.output.rms : 0);
  requestAnimationFrame(drawMeters);
}

async function pollStats() {
  if (connection.isOpen && document.visibilityState === "visible") {
    try {
      const response = await fetch("/stats", authorized());
      if (!response.ok) throw new Error(`/stats: ${response.status}`);
      const stats = await response.json();
      latency.render(stats.latency_ms ?? {}, audio.running ? state.output.queuedMs : null);
    } catch {
      // the socket's own status already tells the user about a dead server
    }
  }
  setTimeout(pollStats, STATS_POLL_MS);
}

async function showEngine() {
  try {
    const health = await (await fetch("/health")).json();
    $("#engine-name").textContent = `Engine: ${health.engine}`;
    const offered = new Set(health.speakers ?? []);
    for (const input of document.querySelectorAll("input[name=voice]")) {
      input.disabled = offered.size > 0 && !offered.has(input.value);
    }
  } catch {
    $("#engine-name").textContent = "Engine: unreachable";
  }
}

// Hooks for the end-to-end test (read-only views of the state, plus a simulated drop).
window.__s2s = {
  outputLevel: () => state.output.rms,
  maxOutputLevel: () => state.output.max,
  resetMaxOutputLevel: () => (state.output.max = 0),
  isPlaying: () => state.output.playing,
  playbackQueuedMs: () => state.output.queuedMs,
  inputLevel: () => state.input.rms,
  maxInputLevel: () => state.input.max,
  sampleRate: () => audio.sampleRate,
  session: () => state.session,
  status: () => state.status,
  events: () => state.events.slice(),
  receivedAudio: receivedBase64,
  dropConnection: () => connection.drop(),
  sendJson: (message) => connection.sendJson(message),
};

bindControls();
drawMeters();
pollStats();
showEngine();
