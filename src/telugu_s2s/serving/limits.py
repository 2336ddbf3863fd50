"""Limits that keep one client from starving the others: connections per IP, the rate of new
connections per IP, the message rate of a connection and the length of a session.

Each breach has an `error` event code: `too_many_connections` and `connection_rate` refuse
the connection; `rate_limited` drops messages (the connection stays); `session_too_long`
ends the session (its open turn is saved first).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket


@dataclass
class LimitSettings:
    max_connections_per_ip: int = 8  # open WebSockets from one address at once
    connections_per_minute_per_ip: float = 60.0  # new WebSockets from one address (burst: a tenth)
    messages_per_s: float = 100.0  # all messages of a connection (the web page sends 25/s of audio)
    text_messages_per_s: float = 20.0  # JSON messages (config writes to the store)
    burst_s: float = 2.0  # a bucket holds this many seconds of its rate
    max_session_s: float = 3600.0  # a session is closed after this long (0: no limit)


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; a message takes one."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = rate, max(1.0, burst), clock
        self.tokens, self.stamp = self.burst, clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    @property
    def full(self) -> bool:
        self._refill()
        return self.tokens >= self.burst


class ConnectionLimiter:
    """Open connections and the connection rate per client address."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], float] = time.monotonic):
        self.settings, self.clock = settings, clock
        self.open: dict[str, int] = {}
        self._rates: dict[str, TokenBucket] = {}

    def acquire(self, address: str) -> tuple[str, str] | None:
        """None when `address` may connect (then `release` it later), else (code, message)."""
        s = self.settings
        if self.open.get(address, 0) >= s.max_connections_per_ip:
            return (
                "too_many_connections",
                f"at most {s.max_connections_per_ip} connections per address",
            )
        rate = s.connections_per_minute_per_ip / 60.0
        bucket = self._rates.setdefault(address, TokenBucket(rate, max(1.0, rate * 6), self.clock))
        if not bucket.take():
            return (
                "connection_rate",
                f"at most {s.connections_per_minute_per_ip:g} new connections a minute per address",
            )
        self.open[address] = self.open.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        left = self.open.get(address, 0) - 1
        if left > 0:
            self.open[address] = left
            return
        self.open.pop(address, None)
        if len(self._rates) > 1024:  # forget idle addresses, so the table stays small
            self._rates = {a: b for a, b in self._rates.items() if a in self.open or not b.full}


class GuardedWebSocket:
    """A WebSocket whose `receive` drops messages over the connection's rate limits.

    The session reads through it unchanged. A dropped message is answered by a
    `rate_limited` error event (at most one a second, so that a flood cannot turn into a
    flood of errors); everything else is delegated to the wrapped socket.
    """

    def __init__(self, ws: WebSocket, settings: LimitSettings,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self._ws, self._clock = ws, clock
        self._all = TokenBucket(
            settings.messages_per_s, settings.messages_per_s * settings.burst_s, clock
        )
        self._text = TokenBucket(settings.text_messages_per_s, settings.text_messages_per_s * settings.burst_s, clock)  # fmt: skip
        self.notify: Callable[[str, str], Awaitable[None]] | None = None  # the session's send_error
        self.dropped = 0
        self._dropped_since_notice = 0
        self._last_notice = -1e9

    def __getattr__(self, name: str):
        return getattr(self._ws, name)

    async def receive(self) -> dict:
        while True:
            message = await self._ws.receive()
            if message["type"] != "websocket.receive":
                return message
            is_text = message.get("text") is not None
            if self._all.take() and (not is_text or self._text.take()):
                return message
            self.dropped += 1
            self._dropped_since_notice += 1
            if self.notify is not None and self._clock() - self._last_notice >= 1.0:
                self._last_notice = self._clock()
                count, self._dropped_since_notice = self._dropped_since_notice, 0
                kind = "text" if is_text else "audio"
                await self.notify(
                    "rate_limited", f"too many messages: dropped {count} (last: {kind})"
                )
