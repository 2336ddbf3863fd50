"""The streaming server: full-duplex WebSocket sessions around a model `Engine`.

engine_api          the Engine protocol and its value types (what a model engine implements)
engine              `ModelEngine`: the exported checkpoints stepping every session as one batch
engine_turns        a slot's turn window and how it splits into turns
engine_checkpoints  loading the codec, speaker bank and S2S exports, checked together
batch_rows          grow, shrink, gather and scatter the rows of the engine's streaming batch
worker              one thread that steps every session's slot as a batch each 80 ms tick
session             one connection: input, output and processing tasks; the lifecycle
client_input        the input task: socket reads into the jitter buffer, validated commands
turn_taking         the processing task's turn logic: barge-in, endpoints, closing turns
turns               the user audio of a turn, the transcript judge, ordered turn events
audio_io            jitter buffer in, paced and cuttable output queue out
vad                 batched streaming silero-vad and a speech tracker
context             the 10-turn window, aggregates, preferences, style adaptation
store               session persistence on SQLAlchemy: SQLite (WAL) or PostgreSQL
schema              the store's tables; migrations/ evolves them (Alembic)
auth                the token, WebSocket origins, session ids, log redaction
limits              per-address connection limits, per-connection message rates
protocol            the wire format and message validation
metrics             per-component latency, interruption statistics, Prometheus metrics
ports               port fallback (8000, 8080, 8010)
server              the FastAPI app and `serve`
"""
