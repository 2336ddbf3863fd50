// The conversation view: one <li class="turn"> per exchange, with a bubble for the user's
// transcript and one for the assistant's monologue.
//
// Server order per turn: `text` pieces (final: false) while it happens; then, when it ends,
// `text` user final, `text` assistant final (only the part the user heard), and `turn`.
// After an interruption the unheard rest of the monologue stays visible, struck through.

export class Transcript {
  constructor(list /* <ol> */, empty /* <li> placeholder */) {
    this.list = list;
    this.empty = empty;
    this.turn = null; // {item, user, assistant, streamed: {user, assistant}}
  }

  clear() {
    this.list.replaceChildren(this.empty);
    this.empty.hidden = false;
    this.turn = null;
  }

  /** A `text` event. */
  text({ role, text, final }) {
    if (role !== "user" && role !== "assistant") return;
    if (final) return this.#finalText(role, text);
    if (!text) return;
    const turn = this.#current();
    turn.streamed[role] += text;
    const bubble = this.#bubble(turn, role);
    bubble.classList.add("live");
    bubble.querySelector(".words").textContent = turn.streamed[role];
    this.#scroll();
  }

  /** An `interrupted` event: mark the reply being spoken, if any. */
  interrupted({ reason, heard_ms: heardMs }) {
    const bubble = this.turn?.assistant;
    if (!bubble) return;
    const who = reason === "manual" ? "you pressed Interrupt" : "you spoke over it";
    this.#badge(bubble, "interrupted", `Interrupted after ${(heardMs / 1000).toFixed(1)} s: ${who}`);
  }

  /** A `turn` event closes the exchange with its analysis. */
  endTurn(record) {
    const turn = this.turn ?? this.#current();
    this.turn = null;
    if (!turn.user && !turn.assistant) return turn.item.remove(); // nothing was said
    if (record.interrupted && turn.assistant) this.#badge(turn.assistant, "interrupted");
    turn.item.append(turnMeta(record));
    this.#scroll();
  }

  /** A stored turn from a resumed session (GET /sessions/{id}). */
  addPastTurn(record) {
    const turn = this.#current();
    turn.item.classList.add("past");
    if (record.user_text) this.#finalText("user", record.user_text);
    if (record.assistant_text || record.interrupted) this.#finalText("assistant", record.assistant_text);
    this.endTurn(record);
  }

  #finalText(role, text) {
    const turn = this.turn ?? (text ? this.#current() : null);
    if (!turn) return;
    const streamed = turn.streamed[role];
    if (!text && !turn[role] && !(role === "assistant" && streamed)) return;
    const bubble = this.#bubble(turn, role);
    bubble.classList.remove("live");
    const words = bubble.querySelector(".words");
    words.textContent = text;
    if (role === "assistant" && streamed.length > text.length && streamed.startsWith(text)) {
      const unheard = document.createElement("span");
      unheard.className = "unheard";
      unheard.title = "Not spoken: the reply was cut here";
      unheard.textContent = streamed.slice(text.length);
      words.append(unheard);
    }
  }

  #current() {
    if (this.turn) return this.turn;
    this.empty.hidden = true;
    const item = document.createElement("li");
    item.className = "turn";
    this.list.append(item);
    this.turn = { item, user: null, assistant: null, streamed: { user: "", assistant: "" } };
    return this.turn;
  }

  #bubble(turn, role) {
    if (turn[role]) return turn[role];
    const bubble = document.createElement("div");
    bubble.className = `bubble ${role}`;
    bubble.lang = "te";
    const who = document.createElement("span");
    who.className = "who";
    who.lang = "en";
    who.textContent = role === "user" ? "You" : "Assistant";
    const words = document.createElement("span");
    words.className = "words";
    bubble.append(who, words);
    // The user's words come first even when the reply started streaming before them.
    if (role === "user" && turn.assistant) turn.item.insertBefore(bubble, turn.assistant);
    else turn.item.append(bubble);
    turn[role] = bubble;
    return bubble;
  }

  #badge(bubble, text, title = "") {
    let badge = bubble.querySelector(".badge");
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "badge";
      bubble.querySelector(".who").append(badge);
    }
    badge.textContent = text;
    if (title) badge.title = title;
    bubble.dataset.interrupted = "true";
  }

  #scroll() {
    const list = this.list;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    if (nearBottom) list.scrollTop = list.scrollHeight;
  }
}

function turnMeta(record) {
  const meta = document.createElement("div");
  meta.className = "turn-meta";
  const chips = [`turn ${record.index}`];
  if (typeof record.sentiment === "number") chips.push(`sentiment ${formatSigned(record.sentiment)}`);
  if (record.topic) chips.push(`topic: ${record.topic}`);
  if (record.emotion) chips.push(`emotion: ${record.emotion}`);
  for (const text of chips) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.textContent = text;
    meta.append(chip);
  }
  return meta;
}

export function formatSigned(value) {
  return `${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(2)}`;
}
