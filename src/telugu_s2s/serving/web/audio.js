// The browser's audio: microphone -> capture worklet -> 16 kHz PCM16 chunks, and
// assistant PCM16 -> playback worklet (jitter buffer) -> speakers. Both worklets resample.

const CHUNK_MS = 40; // mic audio per WebSocket message
const PREFILL_MS = 100; // jitter buffer before playback starts
const FADE_MS = 8; // fade-out on a cut: long enough to avoid a click, short enough to feel instant

export class MicrophoneError extends Error {}

export class AudioPipeline {
  /**
   * @param {object} handlers
   * @param {(pcm: ArrayBuffer) => void} handlers.onChunk      16 kHz PCM16LE mic audio
   * @param {(level: {rms: number, peak: number}) => void} handlers.onInputLevel
   * @param {(level: {rms: number, peak: number, playing: boolean, queuedMs: number}) => void} handlers.onOutputLevel
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.context = null;
    this.stream = null;
    this.capture = null;
    this.playback = null;
    this.flushWaiters = [];
  }

  get running() {
    return this.context !== null;
  }

  get sampleRate() {
    return this.context?.sampleRate ?? 0;
  }

  /** Open the mic and the audio graph; must run from a user gesture (autoplay rules). */
  async start() {
    if (this.context) return;
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new MicrophoneError("This browser gives no microphone access here: open the page over https or on localhost.");
    }
    // Created synchronously within the click so that playback is allowed to start.
    const context = new AudioContext({ latencyHint: "interactive" });
    try {
      const base = import.meta.url;
      await context.audioWorklet.addModule(new URL("./capture-worklet.js", base));
      await context.audioWorklet.addModule(new URL("./playback-worklet.js", base));
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          // The browser's echo canceller keeps the assistant's own voice from barging in.
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
        },
      });
    } catch (error) {
      await context.close();
      this.stream?.getTracks().forEach((track) => track.stop());
      this.stream = null;
      throw describeMicError(error);
    }
    this.context = context;
    this.playback = new AudioWorkletNode(context, "s2s-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { prefillMs: PREFILL_MS },
    });
    this.playback.port.onmessage = ({ data }) => {
      if (data.type === "level") this.handlers.onOutputLevel(data);
      else if (data.type === "flushed") this.flushWaiters.splice(0).forEach((resolve) => resolve());
    };
    this.playback.connect(context.destination);

    const source = context.createMediaStreamSource(this.stream);
    // No outputs: Chromium pulls a worklet without outputs as long as its input is live.
    this.capture = new AudioWorkletNode(context, "s2s-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { chunkMs: CHUNK_MS },
    });
    this.capture.port.onmessage = ({ data }) => {
      if (data.type === "chunk") this.handlers.onChunk(data.pcm);
      else if (data.type === "level") this.handlers.onInputLevel(data);
    };
    source.connect(this.capture);
    if (context.state !== "running") await context.resume();
  }

  /** Queue assistant audio (PCM16LE 16 kHz) for playback. */
  play(pcm /* ArrayBuffer */) {
    this.playback?.port.postMessage({ type: "audio", pcm }, [pcm]);
  }

  /** Stop playback now with a short fade; resolves once the buffer is empty. */
  flush() {
    if (!this.playback) return Promise.resolve();
    const done = new Promise((resolve) => this.flushWaiters.push(resolve));
    this.playback.port.postMessage({ type: "flush", fadeMs: FADE_MS });
    return done;
  }

  async stop() {
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
    this.capture?.disconnect();
    this.playback?.disconnect();
    this.capture = this.playback = null;
    const context = this.context;
    this.context = null;
    this.flushWaiters.splice(0).forEach((resolve) => resolve());
    if (context) await context.close();
  }
}

function describeMicError(error) {
  const messages = {
    NotAllowedError: "Microphone access was blocked. Allow it in the address bar, then press Start talking again.",
    NotFoundError: "No microphone was found. Plug one in, then press Start talking again.",
    NotReadableError: "The microphone is busy in another application.",
    OverconstrainedError: "The microphone cannot record in a format the page asked for.",
  };
  return new MicrophoneError(messages[error?.name] ?? `The microphone could not start: ${error?.message ?? error}`);
}
