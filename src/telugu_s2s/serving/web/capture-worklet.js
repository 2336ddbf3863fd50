// Microphone capture: the context's rate (usually 48 kHz) -> 16 kHz PCM16LE chunks.
//
// Runs on the audio thread. Every `chunkMs` it posts {type: "chunk", pcm: ArrayBuffer} (the
// buffer is transferred, not copied) and {type: "level", rms, peak} for the input meter.

import { Resampler, floatToPcm16, rms } from "./resampler.js";

const WIRE_RATE = 16000;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const chunkMs = options?.processorOptions?.chunkMs ?? 40;
    this.resampler = new Resampler(sampleRate, WIRE_RATE);
    this.chunk = new Float32Array(Math.round((WIRE_RATE * chunkMs) / 1000)); // (chunk,)
    this.filled = 0;
    this.enabled = true;
    this.port.onmessage = (event) => {
      if (event.data?.type === "enable") this.enabled = Boolean(event.data.value);
    };
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected yet
    const mono = channels[0]; // (128,) at sampleRate; getUserMedia is asked for one channel
    const wire = this.resampler.process(mono); // (~43,) at 16 kHz
    for (let i = 0; i < wire.length; i++) {
      this.chunk[this.filled++] = wire[i];
      if (this.filled === this.chunk.length) this.#flush();
    }
    return true;
  }

  #flush() {
    const level = rms(this.chunk);
    let peak = 0;
    for (let i = 0; i < this.chunk.length; i++) peak = Math.max(peak, Math.abs(this.chunk[i]));
    this.port.postMessage({ type: "level", rms: level, peak });
    if (this.enabled) {
      const pcm = floatToPcm16(this.chunk); // (chunk,) int16; JS typed arrays are little-endian here
      this.port.postMessage({ type: "chunk", pcm: pcm.buffer }, [pcm.buffer]);
    }
    this.filled = 0;
  }
}

registerProcessor("s2s-capture", CaptureProcessor);
