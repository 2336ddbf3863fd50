// The WebSocket session (protocol: serving/protocol.py): connect, send, and reconnect with backoff.
//
// After the first `ready` the session id is kept, so a reconnect resumes the same session
// (its last turns and preferences come back from the server's store). A server with an
// access token gets it as the first message of every socket, never in the URL.

const RETRY_BASE_MS = 500;
const RETRY_MAX_MS = 10000;
const FATAL_CODES = new Set(["unauthorized", "forbidden_origin"]); // retrying cannot fix these

export class Connection {
  /**
   * @param {object} handlers
   * @param {(ready: object) => void} handlers.onReady
   * @param {(event: object) => void} handlers.onEvent   every other JSON event
   * @param {(pcm: ArrayBuffer) => void} handlers.onAudio PCM16LE 16 kHz from the assistant
   * @param {(status: string, detail?: object) => void} handlers.onStatus
   *        "connecting" | "open" | "reconnecting" ({inMs, attempt}) | "closed" | "failed"
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.params = {};
    this.token = null;
    this.wanted = false; // the user wants a connection (reconnect when it drops)
    this.attempt = 0; // reconnect attempts since the last `ready`
    this.retryTimer = null;
    this.fatal = false;
    this.ready = false; // the current socket got its `ready`
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Open `/ws` with {speaker, mode, session?} (and the server's token, if it has one);
   * reconnects until `close()`. */
  open(params, token = null) {
    this.params = { ...params };
    this.token = token;
    this.wanted = true;
    this.fatal = false;
    this.attempt = 0;
    this.#connect();
  }

  /** Say goodbye and stop reconnecting. */
  close() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    if (this.isOpen) this.sendJson({ type: "bye" });
    this.socket?.close(1000, "bye");
    this.socket = null;
    this.handlers.onStatus("closed");
  }

  /** Drop the socket as a network failure would (tests and the "reconnect" demo use it). */
  drop() {
    this.socket?.close(4000, "dropped by the client");
  }

  sendJson(message) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  sendAudio(pcm /* ArrayBuffer, PCM16LE 16 kHz */) {
    if (!this.isOpen) return false;
    this.socket.send(pcm);
    return true;
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(this.params)) if (value) query.set(key, value);
    return `${scheme}://${location.host}/ws?${query}`;
  }

  #connect() {
    this.handlers.onStatus("connecting");
    const socket = new WebSocket(this.url());
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.ready = false;
    socket.onopen = () => {
      if (this.token) socket.send(JSON.stringify({ type: "auth", token: this.token }));
      this.handlers.onStatus("open");
    };
    socket.onmessage = (message) => {
      if (socket !== this.socket) return; // a stale socket
      if (typeof message.data !== "string") return this.handlers.onAudio(message.data);
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return this.handlers.onEvent({ type: "error", code: "bad_json", message: "unreadable message from the server" });
      }
      if (event.type === "ready") {
        this.attempt = 0;
        this.ready = true;
        // Reconnects resume this session with its current voice and mode.
        Object.assign(this.params, { session: event.session, speaker: event.speaker, mode: event.mode });
        this.handlers.onReady(event);
      } else {
        if (event.type === "error" && FATAL_CODES.has(event.code)) this.fatal = true;
        this.handlers.onEvent(event);
      }
    };
    // A failed connect fires `error` then `close`: all of the retry logic lives in onclose.
    socket.onclose = () => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (!this.wanted) return;
      if (this.fatal) {
        this.wanted = false;
        this.handlers.onStatus("failed");
        return;
      }
      const inMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** this.attempt) * (0.8 + 0.4 * Math.random());
      this.attempt++;
      this.handlers.onStatus("reconnecting", { inMs, attempt: this.attempt });
      this.retryTimer = setTimeout(() => this.wanted && this.#connect(), inMs);
    };
  }
}
