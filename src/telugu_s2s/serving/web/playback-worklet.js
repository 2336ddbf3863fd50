// Assistant playback: 16 kHz PCM16 from the socket -> the context's rate, through a small
// jitter buffer.
//
// Messages in:  {type: "audio", pcm: ArrayBuffer}   PCM16LE mono 16 kHz
//               {type: "flush", fadeMs}              stop now: fade out, drop what is queued
// Messages out: {type: "level", rms, peak, playing, queuedMs, drains}   about every 10 ms
//               {type: "flushed"}
//
// Playback starts once `prefillMs` is queued (or the first audio has waited that long), and
// goes back to buffering on an underrun, so network jitter costs a short gap, not crackle.

import { Resampler, pcm16ToFloat } from "./resampler.js";

const WIRE_RATE = 16000;
const REPORT_EVERY = 4; // render quanta (128 frames each) per level report

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options?.processorOptions ?? {};
    this.prefill = Math.round((sampleRate * (opts.prefillMs ?? 100)) / 1000);
    this.queue = new Float32Array(Math.round((sampleRate * (opts.maxMs ?? 3000)) / 1000)); // ring
    this.read = 0;
    this.queued = 0;
    this.resampler = new Resampler(WIRE_RATE, sampleRate);
    this.playing = false;
    this.waited = 0; // frames spent buffering with something queued
    this.fadeTotal = 0;
    this.fadeLeft = 0; // > 0 while a flush fades out
    this.drains = 0; // times the buffer ran dry: reply ends and network gaps
    this.report = { quanta: 0, sumSquares: 0, frames: 0, peak: 0 };
    this.port.onmessage = (event) => this.#onMessage(event.data);
  }

  #onMessage(message) {
    if (message.type === "audio") {
      if (this.fadeLeft > 0) return; // a cut is in progress; late audio belongs to the old reply
      this.#enqueue(this.resampler.process(pcm16ToFloat(new Int16Array(message.pcm))));
    } else if (message.type === "flush") {
      if (!this.playing || this.queued === 0) {
        this.#clear();
        this.port.postMessage({ type: "flushed" });
        return;
      }
      this.fadeTotal = Math.max(1, Math.round((sampleRate * (message.fadeMs ?? 8)) / 1000));
      this.fadeLeft = this.fadeTotal;
    }
  }

  #enqueue(samples /* Float32Array (N,) at sampleRate */) {
    const capacity = this.queue.length;
    for (let i = 0; i < samples.length; i++) {
      if (this.queued === capacity) {
        // Over the cap: drop the oldest sample rather than let latency grow without bound.
        this.read = (this.read + 1) % capacity;
        this.queued--;
      }
      this.queue[(this.read + this.queued) % capacity] = samples[i];
      this.queued++;
    }
  }

  #clear() {
    this.queued = 0;
    this.read = 0;
    this.playing = false;
    this.waited = 0;
    this.fadeLeft = 0;
    this.resampler = new Resampler(WIRE_RATE, sampleRate); // forget the old reply's tail
  }

  process(_inputs, outputs) {
    const out = outputs[0][0]; // (128,)
    if (!this.playing && this.queued > 0) {
      this.waited += out.length;
      if (this.queued >= this.prefill || this.waited >= this.prefill) this.playing = true;
    }
    let sumSquares = 0;
    let peak = 0;
    for (let i = 0; i < out.length; i++) {
      let sample = 0;
      if (this.playing && this.queued > 0) {
        sample = this.queue[this.read];
        this.read = (this.read + 1) % this.queue.length;
        this.queued--;
        if (this.fadeLeft > 0) {
          sample *= this.fadeLeft / this.fadeTotal; // linear ramp to zero
          if (--this.fadeLeft === 0) this.#finishFlush();
        }
      } else if (this.playing) {
        if (this.fadeLeft > 0) this.#finishFlush(); // ran dry mid-fade: the cut is done
        else this.drains++;
        this.playing = false; // buffer again before resuming
        this.waited = 0;
      }
      out[i] = sample;
      sumSquares += sample * sample;
      peak = Math.max(peak, Math.abs(sample));
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out); // mono to every channel
    this.#reportLevel(sumSquares, out.length, peak);
    return true;
  }

  #finishFlush() {
    this.#clear();
    this.port.postMessage({ type: "flushed" });
  }

  #reportLevel(sumSquares, frames, peak) {
    const r = this.report;
    r.sumSquares += sumSquares;
    r.frames += frames;
    r.peak = Math.max(r.peak, peak);
    if (++r.quanta < REPORT_EVERY) return;
    this.port.postMessage({
      type: "level",
      rms: Math.sqrt(r.sumSquares / r.frames),
      peak: r.peak,
      playing: this.playing,
      queuedMs: (1000 * this.queued) / sampleRate,
      drains: this.drains,
    });
    this.report = { quanta: 0, sumSquares: 0, frames: 0, peak: 0 };
  }
}

registerProcessor("s2s-playback", PlaybackProcessor);
