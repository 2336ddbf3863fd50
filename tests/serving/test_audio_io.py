"""The wire codec, the jitter buffer and the paced, cuttable output queue."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from telugu_s2s.serving import protocol
from telugu_s2s.serving.audio_io import AudioOutput, JitterBuffer, UtteranceBuffer, fade_out
from tests.serving.fakes import tone

FRAME = 1280


def test_pcm16_round_trip_and_odd_length():
    audio = np.array([0.0, 0.5, -0.5, 0.999, -1.0, 1.5], np.float32)
    data = protocol.encode_pcm16(audio)
    assert len(data) == 2 * audio.shape[0]
    back = protocol.decode_pcm16(data)
    np.testing.assert_allclose(back[:5], audio[:5], atol=1 / 32768)
    assert back[5] == pytest.approx(32767 / 32768)  # clipped, not wrapped
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.decode_pcm16(data[:-1])
    assert err.value.code == "bad_audio"


def test_jitter_buffer_rechunks_any_chunk_sizes_without_loss():
    rng = np.random.default_rng(0)
    audio = rng.uniform(-1, 1, 20 * FRAME + 123).astype(np.float32)
    buffer = JitterBuffer(FRAME, prefill_frames=1, max_frames=100)
    cuts = np.sort(rng.choice(np.arange(1, audio.shape[0]), 37, replace=False))
    for chunk in np.split(audio, cuts):  # sizes from 1 sample to thousands
        buffer.write(chunk, arrival=0.0)
    frames = []
    while (item := buffer.read()) is not None:
        frames.append(item[0])
    assert len(frames) == 20 and all(f.shape == (FRAME,) for f in frames)
    np.testing.assert_array_equal(np.concatenate(frames), audio[: 20 * FRAME])


def test_jitter_buffer_prefill_underrun_and_overflow():
    buffer = JitterBuffer(FRAME, prefill_frames=2, max_frames=4)
    buffer.write(np.ones(FRAME, np.float32), 1.0)
    assert buffer.read() is None  # waits for 2 frames before playing
    buffer.write(2 * np.ones(FRAME, np.float32), 2.0)
    assert buffer.read()[1] == 1.0 and buffer.read()[1] == 2.0
    assert buffer.read() is None and buffer.underruns == 1
    buffer.write(np.arange(6 * FRAME, dtype=np.float32), 3.0)  # 6 frames into a 4-frame buffer
    assert buffer.overflows == 2 and buffer.depth == 4
    assert buffer.read()[0][0] == 2 * FRAME  # the oldest two went


def _tick(buffer: JitterBuffer, arrive: int, clock: list[int]) -> int:
    """`arrive` frames arrive, then one tick reads; returns how many frames it took."""
    for _ in range(arrive):
        buffer.write(np.full(FRAME, clock[0], np.float32), float(clock[0]))
        clock[0] += 1
    return len(buffer.read_tick())


def test_jitter_buffer_drains_a_standing_delay_but_not_a_passing_burst():
    buffer, clock = JitterBuffer(FRAME, prefill_frames=1, catchup_frames=3, drain_ticks=4), [0]
    assert _tick(buffer, 2, clock) == 1  # a burst: one frame now waits at every tick...
    taken = [_tick(buffer, 1, clock) for _ in range(5)]
    assert taken == [1, 1, 2, 1, 1] and buffer.depth == 0  # ...until it is drained
    # Jitter that comes and goes (a late frame, then two) never drains anything.
    taken = [_tick(buffer, n, clock) for n in (0, 2, 1, 0, 2, 1, 1, 0, 2)]
    assert 2 not in taken and buffer.underruns == 1
    # Without draining, the burst's delay stays for good.
    still = JitterBuffer(FRAME, prefill_frames=1, catchup_frames=3, drain_ticks=0)
    assert [_tick(still, n, [0]) for n in (2, 1, 1, 1, 1, 1, 1)] == [1] * 7 and still.depth == 1


def test_jitter_buffer_catches_up_at_once_when_far_behind():
    buffer, clock = JitterBuffer(FRAME, prefill_frames=1, catchup_frames=3, drain_ticks=0), [0]
    assert [_tick(buffer, n, clock) for n in (5, 1, 1, 1)] == [2, 2, 1, 1]
    assert buffer.depth == 2  # back under the catch-up depth; draining is off


def test_fade_out_is_silent_in_its_second_half():
    tail = fade_out(0.9 * np.ones(160, np.float32), fade=80)
    assert np.all(np.diff(tail[:80]) <= 0) and tail[0] > 0.85
    assert np.all(tail[80:] == 0.0)


class Recorder:
    def __init__(self):
        self.chunks: list[tuple[float, np.ndarray]] = []

    async def __call__(self, samples: np.ndarray) -> None:
        self.chunks.append((time.monotonic(), samples.copy()))

    def audio(self) -> np.ndarray:
        return np.concatenate([c for _, c in self.chunks]) if self.chunks else np.zeros(0)


async def _settle(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _output(recorder: Recorder, capacity: int = 64, lead_ms: float = 80.0) -> AudioOutput:
    return AudioOutput(
        recorder, asyncio.Lock(), 16000, capacity, lead_ms, fade_ms=5, holdback_ms=10
    )


def test_cut_fades_the_last_chunk_and_nothing_follows():
    reply = tone(330, 12 * FRAME / 16000, amplitude=0.5)  # 12 frames

    async def scenario():
        recorder = Recorder()
        output = _output(recorder, lead_ms=1000)  # no pacing wait: all may go out at once
        task = asyncio.create_task(output.run())
        for k in range(6):
            output.push(1, reply[k * FRAME : (k + 1) * FRAME])
        await _settle(lambda: output.queued_frames == 0)
        dropped_before = len(recorder.chunks)
        for k in range(6, 12):
            output.push(1, reply[k * FRAME : (k + 1) * FRAME])
        await output.cut()
        after_cut = len(recorder.chunks)
        await asyncio.sleep(0.05)
        task.cancel()
        return recorder, output, dropped_before, after_cut

    recorder, output, before, after_cut = asyncio.run(scenario())
    sent = recorder.audio()
    assert len(recorder.chunks) == after_cut  # nothing after the cut
    assert after_cut >= before + 1  # the faded tail went out at the cut
    assert sent.shape[0] == output.heard_samples(1) and sent.shape[0] % FRAME == 0
    n = sent.shape[0]
    np.testing.assert_allclose(sent[: n - 160], reply[: n - 160], atol=1e-7)  # untouched before
    assert np.abs(sent[-80:]).max() < 0.01  # the last 5 ms: below 1% of full scale
    assert np.abs(np.diff(sent)).max() < 0.09  # no click: no step beyond the sine's own slope


def test_pause_resume_keeps_every_sample_without_clicks():
    reply = tone(330, 10 * FRAME / 16000, amplitude=0.5)

    async def scenario():
        recorder = Recorder()
        output = _output(recorder, lead_ms=1000)
        task = asyncio.create_task(output.run())
        for k in range(4):
            output.push(7, reply[k * FRAME : (k + 1) * FRAME])
        await _settle(lambda: output.queued_frames == 0)
        await output.pause()
        for k in range(4, 10):
            output.push(7, reply[k * FRAME : (k + 1) * FRAME])
        await asyncio.sleep(0.05)
        paused_chunks = len(recorder.chunks)
        queued = output.queued_frames
        output.resume()
        output.end_reply(7)
        await _settle(lambda: 7 in output.finished)
        task.cancel()
        return recorder, paused_chunks, queued

    recorder, paused_chunks, queued = asyncio.run(scenario())
    assert queued == 6 and paused_chunks == 5  # 4 frames + the faded tail, then nothing
    sent = recorder.audio()
    assert sent.shape[0] == reply.shape[0]  # nothing dropped, nothing added
    assert np.abs(np.diff(sent)).max() < 0.09


def test_output_is_paced_near_real_time():
    async def scenario():
        recorder = Recorder()
        output = _output(recorder, lead_ms=0)
        task = asyncio.create_task(output.run())
        for _ in range(6):
            output.push(1, np.zeros(FRAME, np.float32))
        await _settle(lambda: output.queued_frames == 0)
        task.cancel()
        return recorder

    times = [t for t, _ in asyncio.run(scenario()).chunks]
    # frame k may leave no earlier than k frames after the first (a busy machine only delays)
    for k, t in enumerate(times):
        assert t - times[0] >= k * 0.08 - 0.01


def test_full_queue_drops_the_oldest_frame():
    async def scenario():
        output = _output(Recorder(), capacity=3)  # its task is not running: frames just queue
        for k in range(5):
            output.push(1, np.full(FRAME, k, np.float32))
        return output

    output = asyncio.run(scenario())
    assert output.overflows == 2 and output.queued_frames == 3 and output.free == 0


def test_utterance_buffer_keeps_the_lead_in_and_feeds_then_silence():
    frames = [np.full(FRAME, k, np.float32) for k in range(8)]
    buffer = UtteranceBuffer(FRAME, preroll_frames=2, max_silence_frames=3)
    buffer.hear(frames[:3], onset=False)
    assert not buffer.collecting
    buffer.hear(frames[3:4], onset=True)  # the onset is found at frame 3: frames 2-3 open it
    buffer.hear(frames[4:6], onset=False)
    assert [f[0] for f in buffer.frames] == [2, 3, 4, 5]
    buffer.start_feed()
    fed = buffer.feed(3) + buffer.feed(10)
    assert [f[0] for f in fed] == [2, 3, 4, 5, 0, 0, 0] and buffer.exhausted
    assert buffer.feed(5) == []
