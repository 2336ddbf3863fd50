"""A Python client for the streaming server; tests and benchmarks use it too.

    python -m telugu_s2s.client in.wav --speaker priya --mode stream \
        [--url ws://127.0.0.1:8000/ws] [--out reply.wav] [--events events.json] [--stats stats.json]

A server with a token wants it in $TELUGU_S2S_AUTH_TOKEN (sent as an Authorization header).

It streams the file in real time (80 ms chunks), keeps streaming silence afterwards like an
open microphone until the reply is over, and writes the assistant's audio as a wav plus a
JSON timeline: every event, every audio chunk received and every chunk sent, each stamped
with `t`, seconds since the connection opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def _pcm16(audio: np.ndarray) -> bytes:
    return np.round(np.clip(audio, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2").tobytes()


def read_wav(path: str | Path) -> np.ndarray:
    """An audio file as mono float32 (N,) at 16 kHz."""
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    return audio.astype(np.float32)


def ws_url(url: str, **params: str | None) -> str:
    """`url` (ws://host:port or .../ws) with the query parameters that are not None."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path if parts.path.endswith("/ws") else parts.path.rstrip("/") + "/ws"
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update({k: v for k, v in params.items() if v is not None})
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, path, urllib.parse.urlencode(query), "")
    )


class S2SClient:
    """One WebSocket session: send audio and messages, collect a timestamped timeline."""

    def __init__(self, url: str, speaker: str | None = None, mode: str | None = None,
                 session: str | None = None, token: str | None = None,
                 headers: dict[str, str] | None = None):  # fmt: skip
        self.url = ws_url(url, speaker=speaker, mode=mode, session=session)
        # The token goes in a header, never the URL (servers log URLs).
        self.headers = {
            **(headers or {}),
            **({"Authorization": f"Bearer {token}"} if token else {}),
        }
        self.timeline: list[dict] = []  # {"t", "kind": event|audio|sent, ...}
        self.ready: dict = {}
        self._chunks: list[np.ndarray] = []
        self._received = 0
        self._changed = asyncio.Event()
        self._ws = None
        self._reader: asyncio.Task | None = None
        self._mic_clock: float | None = None  # when the audio sent so far ends, in real time
        self.t0 = 0.0
        self.closed = False

    async def __aenter__(self) -> S2SClient:
        from websockets.asyncio.client import connect

        self.t0 = time.monotonic()
        self._ws = await connect(
            self.url, max_size=None, open_timeout=30, additional_headers=self.headers or None
        )
        self._reader = asyncio.create_task(self._read())
        self.ready = await self.wait_for(lambda e: e["type"] in ("ready", "error"), timeout=30)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def now(self) -> float:
        return time.monotonic() - self.t0

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if isinstance(message, bytes):
                    audio = np.frombuffer(message, "<i2").astype(np.float32) / 32768.0
                    self.timeline.append({"t": self.now(), "kind": "audio", "offset": self._received,
                                          "samples": audio.shape[0]})  # fmt: skip
                    self._chunks.append(audio)
                    self._received += audio.shape[0]
                else:
                    self.timeline.append({"t": self.now(), "kind": "event", **json.loads(message)})
                self._changed.set()
        except Exception:  # noqa: BLE001 - connection closed, however it closed
            pass
        finally:
            self.closed = True
            self._changed.set()

    @property
    def events(self) -> list[dict]:
        return [e for e in self.timeline if e["kind"] == "event"]

    def audio(self) -> np.ndarray:
        """All assistant audio received so far (N,) float32."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 30.0,
                       after: int = 0) -> dict:  # fmt: skip
        """The first event (from timeline index `after` on) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.timeline[after:]:
                if entry["kind"] == "event" and predicate(entry):
                    return entry
            if self.closed:
                raise ConnectionError(f"connection closed; waiting for an event in {self.url}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching event within {timeout} s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def wait_audio(self, samples: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self._received < samples:
            if self.closed or time.monotonic() > deadline:
                raise TimeoutError(f"received {self._received} of {samples} samples")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                pass

    async def send_audio(self, audio: np.ndarray | bytes) -> None:
        data = audio if isinstance(audio, bytes) else _pcm16(audio)
        await self._ws.send(data)
        self.timeline.append({"t": self.now(), "kind": "sent", "samples": len(data) // 2})

    async def send_json(self, message: dict | str) -> None:
        await self._ws.send(message if isinstance(message, str) else json.dumps(message))

    async def stream(
        self, audio: np.ndarray, chunk_ms: float = 80.0, realtime: bool = True
    ) -> None:
        """Send `audio` (N,) in chunks, paced to real time when `realtime`. Back-to-back
        calls continue one clock, as a microphone would: the next call's first chunk waits
        until the previous call's audio has played."""
        chunk = round(SAMPLE_RATE * chunk_ms / 1000)
        now = time.monotonic()
        start = self._mic_clock if self._mic_clock is not None and self._mic_clock > now else now
        for i in range(0, audio.shape[0], chunk):
            if realtime:
                await asyncio.sleep(max(0.0, start + i / SAMPLE_RATE - time.monotonic()))
            await self.send_audio(audio[i : i + chunk])
        self._mic_clock = start + audio.shape[0] / SAMPLE_RATE if realtime else None

    async def close(self, bye: bool = True) -> None:
        if self._ws is None:
            return
        if bye and not self.closed:
            try:
                await self.send_json({"type": "bye"})
                await asyncio.wait_for(self._reader, 5.0)
            except Exception:  # noqa: BLE001 - already gone
                pass
        await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        self._ws = None

    def save(self, out_wav: str | Path | None, events_json: str | Path | None, **extra) -> None:
        if out_wav:
            import soundfile as sf

            sf.write(str(out_wav), self.audio(), SAMPLE_RATE, subtype="PCM_16")
        if events_json:
            payload = {
                "url": self.url,
                "session": self.ready.get("session"),
                **extra,
                "timeline": self.timeline,
            }
            Path(events_json).write_text(json.dumps(payload, ensure_ascii=False, indent=1))


def fetch_stats(url: str, token: str | None = None) -> dict:
    """GET /stats of the server behind a ws:// URL."""
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    request = urllib.request.Request(f"{scheme}://{parts.netloc}/stats")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _idle_after_reply(client: S2SClient, idle_s: float) -> bool:
    """The last reply is over: its `turn` event came after all audio, `idle_s` ago."""
    last = [e for e in client.timeline if e["kind"] == "audio" or e.get("type") == "turn"]
    return bool(last) and last[-1].get("type") == "turn" and client.now() - last[-1]["t"] >= idle_s


async def run_file(audio: np.ndarray, url: str, speaker: str | None, mode: str | None,
                   session: str | None = None, tail_s: float = 15.0, idle_s: float = 1.0,
                   token: str | None = None) -> S2SClient:  # fmt: skip
    """Stream `audio` like a live microphone and collect the reply."""
    async with S2SClient(url, speaker, mode, session, token) as client:
        if client.ready.get("type") != "ready":
            raise ConnectionError(f"server refused the session: {client.ready}")
        await client.stream(audio)
        silence = np.zeros(round(0.08 * SAMPLE_RATE), np.float32)
        end = client.now() + tail_s
        while client.now() < end and not client.closed and not _idle_after_reply(client, idle_s):
            await client.send_audio(silence)  # an open microphone keeps sending
            await asyncio.sleep(0.08)
    return client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m telugu_s2s.client", description=__doc__.split("\n")[0]
    )
    parser.add_argument("wav", type=Path, help="user audio (any rate; mixed to mono 16 kHz)")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws")
    parser.add_argument("--speaker", default=None, help="arjun | ravi | priya | lakshmi")
    parser.add_argument("--mode", default=None, help="stream | turn")
    parser.add_argument("--session", default=None, help="resume this session id")
    parser.add_argument("--out", type=Path, default=Path("reply.wav"))
    parser.add_argument("--events", type=Path, default=Path("events.json"))
    parser.add_argument(
        "--tail", type=float, default=15.0, help="max seconds of silence after the file"
    )
    parser.add_argument(
        "--stats", type=Path, default=None, help="also save the server's /stats here"
    )
    args = parser.parse_args(argv)
    token = os.environ.get("TELUGU_S2S_AUTH_TOKEN")  # not an option: argv shows in `ps`

    try:
        audio = read_wav(args.wav)
    except (OSError, RuntimeError) as exc:  # soundfile's errors derive from these
        print(f"error: {args.wav}: {exc}", file=sys.stderr)
        return 1
    try:
        client = asyncio.run(
            run_file(audio, args.url, args.speaker, args.mode, args.session, args.tail, token=token)
        )
    except (OSError, ConnectionError, TimeoutError) as exc:
        print(f"error: {args.url}: {exc}", file=sys.stderr)
        return 1
    client.save(args.out, args.events, input_seconds=audio.shape[0] / SAMPLE_RATE)
    if args.stats:  # per-component p50/p95 after the session (e.g. the 60-second cost)
        args.stats.write_text(json.dumps(fetch_stats(args.url, token), indent=1))
    turns = [e for e in client.events if e["type"] == "turn"]
    print(f"session {client.ready.get('session')}: {client.audio().shape[0] / SAMPLE_RATE:.2f} s of reply, "
          f"{len(turns)} turns, {len(client.events)} events -> {args.out}, {args.events}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
