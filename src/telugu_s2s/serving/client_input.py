"""A session's input task: reads the socket, re-chunks audio into the jitter buffer and hands
validated JSON messages to the processing task as commands (message, receive time)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from telugu_s2s.serving import protocol

if TYPE_CHECKING:
    from telugu_s2s.serving.session import Session


class ClientInput:
    def __init__(self, session: Session):
        self.session = session
        self._receive_cost = 0.0  # ms spent on audio not yet completing a frame

    async def run(self) -> None:
        """Until `bye`, a disconnect or the session closing; bad input gets an error event."""
        session = self.session
        limit = session.hub.settings.max_message_bytes
        while not session.closing:
            message = await session.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data, text = message.get("bytes"), message.get("text")
            size = len(data) if data is not None else len((text or "").encode())
            if size > limit:
                await session.send_error(
                    "too_large", f"message of {size} bytes exceeds the {limit}-byte limit"
                )
                continue
            try:
                if data is not None:
                    self._receive_audio(data)
                elif text is not None and self._receive_text(text):
                    return  # bye
            except protocol.ProtocolError as exc:
                await session.send_error(exc.code, exc.message)

    def _receive_audio(self, data: bytes) -> None:
        start = time.perf_counter()
        samples = protocol.decode_pcm16(data)
        frames = self.session.jitter.write(samples, time.monotonic())
        self._receive_cost += (time.perf_counter() - start) * 1000
        for _ in range(frames):  # the cost of a message is shared by the frames it completed
            self.session.hub.latency.record("receive", self._receive_cost / frames)
        if frames:
            self._receive_cost = 0.0

    def _receive_text(self, text: str) -> bool:
        message = protocol.parse_client_message(text)
        if message["type"] == "bye":
            return True
        if message["type"] == "config":
            speakers = self.session.engine.speakers
            message = {"type": "config", **protocol.validate_config(message, speakers)}
        self.session.commands.append((message, time.monotonic()))
        return False
