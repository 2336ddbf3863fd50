"""The FastAPI app: the `/ws` full-duplex endpoint and the HTTP endpoints.

`create_app(engine, settings)` builds the app around any `Engine`; `serve(app, ...)` runs it
under uvicorn on the first free port of 8000, 8080, 8010 (see `ports`). Lightning is never
imported here: the engine loads framework-free checkpoints.

When `auth_token` is set, every route that reveals or changes a session needs it (`/ws`,
`/sessions/*`, and `/stats` and `/metrics` unless `public_metrics`); see `auth` for how it
travels and `limits` for the per-address and per-connection limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from telugu_s2s.serving import auth, protocol
from telugu_s2s.serving.context import ConversationContext, Preferences
from telugu_s2s.serving.engine_api import Engine, EngineFull
from telugu_s2s.serving.limits import ConnectionLimiter, GuardedWebSocket, LimitSettings
from telugu_s2s.serving.metrics import InterruptionStats, LatencyStats, ServerMetrics
from telugu_s2s.serving.planning import REPLY_SOURCES, load_reply_planner
from telugu_s2s.serving.ports import DEFAULT_PORTS, listen_first_free
from telugu_s2s.serving.session import Session
from telugu_s2s.serving.store import SessionStore
from telugu_s2s.serving.turns import (
    DIALOG_TOPICS,
    USER_TRANSCRIPTS,
    Recognizer,
    TopicModel,
    Transcriber,
    load_judge,
    load_topic_model,
)
from telugu_s2s.serving.vad import SileroVAD
from telugu_s2s.serving.worker import EngineWorker

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent / "web"


@dataclass
class VADSettings:
    threshold: float = 0.5  # default per-session threshold (a preference can change it)
    min_speech_ms: float = 160.0
    hangover_ms: float = 320.0


@dataclass
class TurnSettings:
    end_silence_ms: float = 640.0  # VAD silence that ends an utterance in turn mode
    preroll_ms: float = 320.0  # audio kept before the detected onset
    burst_frames: int = 8  # engine frames per tick while generating a turn reply
    max_reply_frames: int = 250  # silence frames fed after the utterance before giving up
    max_utterance_ms: float = 30000.0


@dataclass
class ServerSettings:
    store_url: str = "sqlite:///data/state/telugu_s2s.db"
    context_turns: int = 10
    default_speaker: str = "priya"
    default_mode: str = "stream"
    default_style: str = "auto"
    temperature: float = 0.35
    top_k: int = 50
    auth_token: str | None = None  # when set: Authorization header or a first `auth` message
    public_metrics: bool = False  # /stats and /metrics answer without the token
    auth_timeout_s: float = 10.0  # time for the first WebSocket message to bring the token
    allowed_origins: list[str] = field(default_factory=lambda: ["self", "localhost"])
    session_retention_days: float | None = None  # purge sessions untouched this long (None: keep)
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-For names the client
    max_message_bytes: int = 1 << 20  # larger messages get an error event (about 32 s of audio)
    jitter_prefill_frames: int = 1
    jitter_max_ms: float = 4000.0
    jitter_catchup_frames: int = 3  # deeper than this, a tick takes two frames to catch up
    jitter_drain_ticks: int = 6  # a spare frame waiting this many ticks in a row: take two
    output_queue_frames: int = 64
    output_lead_ms: float = 80.0  # how far ahead of real time audio may be sent
    fade_ms: float = 5.0
    holdback_ms: float = 10.0
    barge_in: bool = True
    min_interruption_ms: float = 480.0  # shorter speech over the assistant only pauses it
    # A pause on a voiced frame that never became speech resumes after this much unvoiced audio:
    # the VAD dips for a frame inside words, and resuming on one dip leaks reply audio.
    barge_resume_quiet_ms: float = 160.0
    no_reply_timeout_ms: float = 5000.0  # stream mode: close a turn the engine never answers
    idle_timeout_s: float = 120.0  # no speech, message or reply this long: `idle`, close (0: off)
    stats_interval_s: float = 5.0  # periodic `stats` events (0: off)
    user_transcript: str = "s2s"  # final user text: s2s (the model's user stream) | judge
    asr_dir: str | None = None  # the judge's recognizer export (None: checkpoints/asr)
    # the session's topic: s2s (the S2S topic head) | text (each turn's final transcript)
    dialog_topic: str = "s2s"
    text_topics_dir: str | None = None  # the text topic model (None: checkpoints/text_topics)
    # what the replies say: model (the S2S model's own words) | planner (the reply planner's
    # plan from the judge's transcript, spoken by the model; needs user_transcript: judge)
    replies: str = "model"
    reply_planner_dir: str | None = None  # the planner export (None: checkpoints/reply_planner)
    vad: VADSettings = field(default_factory=VADSettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)

    @classmethod
    def from_dict(cls, values: dict | None) -> ServerSettings:
        """From a plain dict (e.g. the `server` node of conf/serve.yaml); unknown keys fail."""
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown server settings {unknown}")
        for key, kind in (("vad", VADSettings), ("turn", TurnSettings), ("limits", LimitSettings)):
            if isinstance(values.get(key), dict):
                values[key] = kind(**values[key])
        return cls(**values)


class Hub:
    """Server-wide state shared by the sessions."""

    def __init__(self, engine: Engine, settings: ServerSettings, vad: SileroVAD | None,
                 judge: Recognizer | None = None, topic_model: TopicModel | None = None,
                 reply_planner=None):  # fmt: skip
        self.settings = settings
        self.topic_model = topic_model  # None: the session topic comes from the S2S head
        self.reply_planner = reply_planner  # None: the model says its own words
        self.metrics = ServerMetrics()
        self.latency = LatencyStats(histogram=self.metrics.latency)
        self.interruptions = InterruptionStats(delay_histogram=self.metrics.interruption_delay)
        self.errors: Counter[str] = Counter()  # error events sent, by code
        frame_ms = 1000.0 * engine.frame_size / engine.sample_rate
        self.worker = EngineWorker(engine, vad, frame_ms, self.latency)
        self.transcriber = Transcriber(judge, engine.sample_rate) if judge is not None else None
        self.store = SessionStore(settings.store_url, settings.context_turns)
        self.sessions: dict[str, Session] = {}
        self.sessions_total = 0
        self.connections = ConnectionLimiter(settings.limits)
        self.started = time.time()
        self.metrics.count_from(self._totals)

    def _totals(self) -> dict:
        """Running totals, exposed as Prometheus counters (name: help, value, label)."""
        w, i = self.worker, self.interruptions
        return {
            "sessions": ("Sessions opened.", self.sessions_total, None),
            "frames": ("80 ms frames stepped by the engine.", w.frames, None),
            "ticks": ("Worker ticks.", w.ticks, None),
            "tick_overruns": ("Ticks that fell a whole frame behind.", w.overruns, None),
            "interruptions": ("Assistant replies cut, by reason.", dict(i.by_reason), "reason"),
            "false_interruptions": ("Short bursts after which the reply resumed.", i.false_interruptions, None),
            "errors": ("Error events sent, by code.", dict(self.errors), "code"),
        }  # fmt: skip

    def default_preferences(self) -> Preferences:
        s = self.settings
        return Preferences(s.default_speaker, s.default_mode, s.default_style, s.vad.threshold)

    def stats(self) -> dict:
        return {
            "sessions": {"active": len(self.sessions), "total": self.sessions_total},
            "interruptions": self.interruptions.summary(),
            "latency_ms": self.latency.summary(),
            "frames": self.worker.frames,
            "ticks": {"count": self.worker.ticks, "overruns": self.worker.overruns},
            "errors": dict(self.errors),
            "uptime_s": round(time.time() - self.started, 1),
        }


def create_app(engine: Engine, settings: ServerSettings | None = None,
               vad: SileroVAD | None | str = "silero", judge: Recognizer | None = None
               ) -> FastAPI:  # fmt: skip
    """The app around `engine`; `vad=None` turns the VAD (and barge-in by voice) off.
    With `settings.user_transcript == "judge"`, `judge` (default: the export in
    `settings.asr_dir`, loaded now, so that a missing one fails at startup) transcribes
    each turn's user audio."""
    settings = settings or ServerSettings()
    if settings.user_transcript not in USER_TRANSCRIPTS:
        raise ValueError(f"server.user_transcript must be one of {list(USER_TRANSCRIPTS)}, "
                         f"got {settings.user_transcript!r}")  # fmt: skip
    if settings.user_transcript == "judge":
        judge = judge if judge is not None else load_judge(settings.asr_dir)
    else:
        judge = None
    if settings.dialog_topic not in DIALOG_TOPICS:
        raise ValueError(f"server.dialog_topic must be one of {list(DIALOG_TOPICS)}, "
                         f"got {settings.dialog_topic!r}")  # fmt: skip
    topics = load_topic_model(settings.text_topics_dir) if settings.dialog_topic == "text" else None
    planner = None
    if settings.replies not in REPLY_SOURCES:
        raise ValueError(f"server.replies must be one of {list(REPLY_SOURCES)}, "
                         f"got {settings.replies!r}")  # fmt: skip
    if settings.replies == "planner":
        if judge is None:
            raise ValueError("server.replies=planner plans from the judge's transcripts: "
                             "set server.user_transcript=judge")  # fmt: skip
        if not callable(getattr(engine, "set_plan", None)):
            raise ValueError(f"server.replies=planner: {type(engine).__name__} cannot say a plan")
        planner = load_reply_planner(settings.reply_planner_dir)
    hub = Hub(engine, settings, SileroVAD() if vad == "silero" else vad, judge, topics, planner)  # type: ignore[arg-type]

    def require_token(request: Request) -> None:
        if settings.auth_token and not auth.token_matches(
            auth.bearer_token(request.headers), settings.auth_token
        ):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is required",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    guarded = [Depends(require_token)]
    metrics_guard = [] if settings.public_metrics else guarded

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if hub.worker.vad is not None:
            await hub.worker.call(hub.worker.vad.warmup)
        ticker = asyncio.create_task(hub.worker.run(), name="engine-ticker")
        retention = asyncio.create_task(_purge_old_sessions(hub), name="retention")
        log.info("engine %s: %d Hz, %d-sample frames, voices %s", type(engine).__name__,
                 engine.sample_rate, engine.frame_size, list(engine.speakers))  # fmt: skip
        try:
            yield
        finally:
            ticker.cancel()
            retention.cancel()
            hub.worker.close()
            if hub.transcriber is not None:
                hub.transcriber.close()
            hub.store.close()

    app = FastAPI(title="telugu-s2s", lifespan=lifespan)
    app.state.hub = hub

    @app.get("/")
    async def index():
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")  # the page's JS, CSS, font

    @app.get("/health")
    async def health():
        return {"status": "ok", "engine": type(engine).__name__, "sessions": len(hub.sessions),
                "speakers": list(engine.speakers), "uptime_s": round(time.time() - hub.started, 1)}  # fmt: skip

    @app.get("/stats", dependencies=metrics_guard)
    async def stats():
        return hub.stats()

    @app.get("/metrics", dependencies=metrics_guard)
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(hub.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/sessions/{session_id}", dependencies=guarded)
    async def session_info(session_id: str):
        stored = await asyncio.to_thread(hub.store.load, session_id, hub.default_preferences())
        live = hub.sessions.get(session_id)
        if stored is None:
            return JSONResponse({"error": f"no session {session_id!r}"}, status_code=404)
        return {
            "id": session_id,
            "created_at": stored.created_at,
            "updated_at": stored.updated_at,
            "preferences": (live.prefs if live else stored.preferences).to_json(),
            "turns": [t.to_json() for t in stored.turns],
            "analysis": stored.aggregates.to_json(),
            "live": live.info() if live else {"active": False},
        }

    @app.websocket("/ws")
    async def websocket(ws: WebSocket):
        await ws.accept()
        address = ws.client.host if ws.client else "unknown"
        if not auth.origin_allowed(ws.headers.get("origin"), ws.headers.get("host"),
                                   settings.allowed_origins):  # fmt: skip
            return await _refuse(ws, hub, "forbidden_origin", "this page's origin may not connect")
        refused = hub.connections.acquire(address)
        if refused is not None:
            return await _refuse(ws, hub, *refused)
        hub.metrics.connections_open.inc()
        try:
            if await _authorized(ws, hub):
                await _serve_connection(ws, hub)
        finally:
            hub.connections.release(address)
            hub.metrics.connections_open.dec()

    return app


async def _authorized(ws: WebSocket, hub: Hub) -> bool:
    """The token from the Authorization header, or else from a first `auth` message."""
    expected = hub.settings.auth_token
    if not expected:
        return True
    if "token" in ws.query_params:
        await _refuse(ws, hub, "unauthorized", "never put the token in the URL (URLs are logged): "
                      "send an Authorization header or a first {\"type\": \"auth\"} message")  # fmt: skip
        return False
    if auth.token_matches(auth.bearer_token(ws.headers), expected):
        return True
    try:
        first = await asyncio.wait_for(ws.receive(), hub.settings.auth_timeout_s)
    except TimeoutError:
        first = {}
    message = None
    if first.get("text") is not None and len(first["text"]) <= 4096:
        with contextlib.suppress(protocol.ProtocolError):
            message = protocol.parse_client_message(first["text"])
    if message is not None and message["type"] == "auth":
        if auth.token_matches(message.get("token"), expected):
            return True
    if first.get("type") != "websocket.disconnect":
        await _refuse(ws, hub, "unauthorized", "a valid token is required: an Authorization "
                      "header or a first {\"type\": \"auth\", \"token\": ...} message")  # fmt: skip
    return False


async def _serve_connection(ws: WebSocket, hub: Hub) -> None:
    query, problems = ws.query_params, []
    settings = hub.settings
    session_id = query.get("session") or auth.new_session_id()
    try:
        protocol.check_session_id(session_id)
    except protocol.ProtocolError as exc:
        problems.append(exc)
        session_id = auth.new_session_id()
    busy = f"session {session_id!r} is open on another connection"
    if session_id in hub.sessions:
        return await _refuse(ws, hub, "session_busy", busy)
    stored = await asyncio.to_thread(hub.store.load, session_id, hub.default_preferences())
    if stored is None and query.get("session") == session_id:  # ids come from the server only
        problems.append(protocol.ProtocolError(
            "unknown_session", "no such session: a new one was started (ids come from `ready`)"))  # fmt: skip
        session_id = auth.new_session_id()
    prefs = stored.preferences if stored else hub.default_preferences()
    for key, check in (("speaker", lambda v: protocol.check_speaker(v, hub.worker.engine.speakers)),
                       ("mode", protocol.check_mode)):  # fmt: skip
        if key in query:
            try:
                setattr(prefs, key, check(query[key]))
            except protocol.ProtocolError as exc:
                problems.append(exc)  # keep the stored or default value; say so after `ready`
    if prefs.speaker not in hub.worker.engine.speakers:  # a stored voice the engine lost
        prefs.speaker = hub.worker.engine.speakers[0]
    if stored is None:
        await asyncio.to_thread(hub.store.create, session_id, prefs)
    else:
        await asyncio.to_thread(hub.store.save_preferences, session_id, prefs)
    turns = stored.turns if stored else []
    context = ConversationContext(
        settings.context_turns, turns, stored.aggregates if stored else None
    )
    if session_id in hub.sessions:  # claimed while we were loading it
        return await _refuse(ws, hub, "session_busy", busy)
    guarded = GuardedWebSocket(ws, settings.limits)
    session = Session(guarded, hub, session_id, prefs, context)  # type: ignore[arg-type]
    guarded.notify = session.send_error
    hub.sessions[session_id] = session
    hub.sessions_total += 1
    hub.metrics.sessions_active.inc()
    watchdog = asyncio.create_task(_limit_length(session, settings.limits.max_session_s))
    try:
        try:
            await session.open()
        except EngineFull as exc:
            return await _refuse(ws, hub, "server_busy", f"{exc}: try again later")
        engine = hub.worker.engine
        await session.send_json(protocol.ready_event(
            session_id, engine.sample_rate, round(session.frame_ms), prefs.speaker, prefs.mode,
            style=prefs.style, resumed=stored is not None, turns=len(turns)))  # fmt: skip
        for problem in problems:
            await session.send_error(problem.code, problem.message)
        await session.run()
    finally:
        watchdog.cancel()
        hub.sessions.pop(session_id, None)
        hub.metrics.sessions_active.dec()
        hub.metrics.session_seconds.observe(time.monotonic() - session.started)
        with contextlib.suppress(Exception):
            await ws.close()


async def _limit_length(session: Session, max_s: float) -> None:
    """Close the session after `max_s`: the processing task saves the open turn first."""
    if max_s <= 0:
        return
    await asyncio.sleep(max_s)
    await session.send_error(
        "session_too_long", f"sessions last at most {max_s:g} s: reconnect to go on"
    )
    session.closing = True


async def _purge_old_sessions(hub: Hub, every_s: float = 3600.0) -> None:
    days = hub.settings.session_retention_days
    while days is not None:
        purged = await asyncio.to_thread(hub.store.purge_older_than, days * 86400.0)
        if purged:
            log.info("retention: purged %d sessions untouched for %g days", purged, days)
        await asyncio.sleep(every_s)


async def _refuse(ws: WebSocket, hub: Hub, code: str, message: str) -> None:
    """An error event, then close: for the cases where the connection cannot go on."""
    hub.errors[code] += 1
    with contextlib.suppress(Exception):  # the client may be gone already
        await ws.send_text(protocol.dumps(protocol.error_event(code, message)))
        await ws.close(code=1008)


def serve(app: FastAPI, host: str = "127.0.0.1", ports=DEFAULT_PORTS, port: int | None = None,
          log_level: str = "info", port_file: str | None = None) -> None:  # fmt: skip
    """Run `app` under uvicorn on `port`, or on the first free of `ports`."""
    import uvicorn

    sock, bound = listen_first_free(host, ports, port)
    log.info("telugu-s2s serving on http://%s:%d (ws://%s:%d/ws)", host, bound, host, bound)
    if port_file:
        Path(port_file).write_text(str(bound))
    settings = app.state.hub.settings
    # uvicorn closes the socket on messages over ws_max_size; keep it well above our limit so
    # that an oversized message gets an error event instead.
    config = uvicorn.Config(app, log_level=log_level,
                            ws_max_size=max(16 << 20, 4 * settings.max_message_bytes),
                            forwarded_allow_ips=settings.forwarded_allow_ips)  # fmt: skip
    auth.redact_logs([settings.auth_token or ""])  # uvicorn's handlers exist once Config is built
    uvicorn.Server(config).run(sockets=[sock])
