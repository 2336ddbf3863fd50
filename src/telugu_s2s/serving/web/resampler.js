// A streaming windowed-sinc resampler for any pair of rates (imported by both worklets).
//
// Output sample j sits at input position t_j = j * inRate / outRate. It is the sum of the
// input around t_j weighted by a Hann-windowed sinc whose cutoff is the lower Nyquist of the
// two rates, so downsampling (48 kHz mic -> 16 kHz wire) is anti-aliased and upsampling
// (16 kHz wire -> 48 kHz speakers) is a clean interpolation. Latency: `halfTaps` input
// samples (0.6 ms at 48 kHz).

export class Resampler {
  /**
   * @param {number} inRate  input sample rate (Hz)
   * @param {number} outRate output sample rate (Hz)
   * @param {number} zeroCrossings sinc zero crossings on each side of the output position
   */
  constructor(inRate, outRate, zeroCrossings = 8) {
    this.cutoff = Math.min(1, outRate / inRate) * 0.92; // of the input Nyquist, with margin
    this.halfTaps = Math.ceil(zeroCrossings / this.cutoff); // the window widens as fc drops
    this.buffer = new Float32Array(4096); // input history; buffer[0] is input index `base`
    this.base = -this.halfTaps; // start with half a window of zeros: no start-up click
    this.length = this.halfTaps;
    this.inRate = inRate;
    this.outRate = outRate;
    this.outIndex = 0; // next output sample, at input index outIndex * inRate / outRate
    this.passthrough = inRate === outRate;
  }

  /** Feed input samples; returns the output samples they complete. */
  process(input /* Float32Array (N,) */) /* Float32Array (M,) */ {
    if (this.passthrough) return Float32Array.from(input);
    this.#append(input);
    const h = this.halfTaps;
    const lastIndex = this.base + this.length - 1; // newest input index held
    const out = [];
    // Recomputing the position from integers keeps chunked and whole-signal output identical.
    for (let t = this.#at(this.outIndex); Math.floor(t) + h <= lastIndex; t = this.#at(++this.outIndex)) {
      const centre = Math.floor(t);
      let acc = 0;
      for (let k = centre - h + 1; k <= centre + h; k++) {
        acc += this.buffer[k - this.base] * this.#kernel(t - k);
      }
      out.push(acc);
    }
    this.#dropBefore(Math.floor(this.#at(this.outIndex)) - h + 1);
    return Float32Array.from(out);
  }

  #at(outIndex) {
    return (outIndex * this.inRate) / this.outRate;
  }

  #kernel(x) {
    const fc = this.cutoff;
    const h = this.halfTaps;
    if (Math.abs(x) >= h) return 0;
    const sinc = x === 0 ? 1 : Math.sin(Math.PI * fc * x) / (Math.PI * fc * x);
    const hann = 0.5 + 0.5 * Math.cos((Math.PI * x) / h);
    return fc * sinc * hann;
  }

  #append(input) {
    if (this.length + input.length > this.buffer.length) {
      const grown = new Float32Array(2 * (this.length + input.length));
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(input, this.length);
    this.length += input.length;
  }

  #dropBefore(index) {
    const drop = Math.min(this.length, Math.max(0, index - this.base));
    if (drop === 0) return;
    this.buffer.copyWithin(0, drop, this.length);
    this.length -= drop;
    this.base += drop;
  }
}

/** Float samples in [-1, 1] -> PCM16 (clipped). */
export function floatToPcm16(samples /* Float32Array (N,) */) /* Int16Array (N,) */ {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
  }
  return out;
}

/** PCM16 -> float samples in [-1, 1). */
export function pcm16ToFloat(samples /* Int16Array (N,) */) /* Float32Array (N,) */ {
  const out = new Float32Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = samples[i] / 32768;
  return out;
}

/** Root mean square of a block. */
export function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}
