"""`python -m telugu_s2s.serve` around the fake engine as a real process, for the tests and
benchmarks that need one (crash safety, replicas, logs, soak)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from telugu_s2s.paths import REPO_ROOT


def serve_args(tmp: Path, name: str, *overrides: str, store_url: str | None = None) -> list[str]:
    return [sys.executable, "-m", "telugu_s2s.serve", "engine._target_=tests.serving.fakes.FakeEngine",
            "~engine.checkpoint_dir", "~engine.device", "~engine.max_slots", "~engine.speaker_guidance",
            "+engine.reply_frames=2", "+engine.reply_after_frames=2",
            "server.user_transcript=s2s", "server.replies=model",  # the fake engine's user texts
            f"server.store_url={store_url or f'sqlite:///{tmp}/state.db'}", f"port_file={tmp}/{name}.port",
            f"hydra.run.dir={tmp}/hydra-{name}", "log_level=warning", *overrides]  # fmt: skip


@contextlib.contextmanager
def serve_process(tmp: Path, name: str, *overrides: str, store_url: str | None = None,
                  env: dict | None = None, token: str | None = None):  # fmt: skip
    """Start the server with the fake engine; yields (process, port, log path)."""
    port_file, log_path = tmp / f"{name}.port", tmp / f"{name}.log"
    port_file.unlink(missing_ok=True)
    args = serve_args(tmp, name, *overrides, store_url=store_url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            args, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            if port_file.exists() and port_file.read_text():
                port = int(port_file.read_text())
                with contextlib.suppress(httpx.HTTPError):
                    if (
                        httpx.get(
                            f"http://127.0.0.1:{port}/health", timeout=2, headers=headers
                        ).status_code
                        == 200
                    ):
                        break
            time.sleep(0.1)
        yield process, port, log_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
