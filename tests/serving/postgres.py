"""A real, throw-away PostgreSQL for the store tests: an unprivileged cluster in a temp dir.

`PostgresCluster.start()` finds Debian's server binaries (installing the `postgresql`
package with apt-get when they are missing and we are root), runs `initdb` and `postgres`
as an unprivileged user on a free loopback port, and `database()` hands out a fresh
database per test. `unavailable_reason()` says why a cluster cannot run here, if it can't.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

_APT_TIMEOUT_S = 300


def _server_bindir() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _install_with_apt() -> str | None:
    """apt-get install postgresql; None on success, else why it failed."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed and apt-get is unavailable (not root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        try:
            done = subprocess.run(
                args, env=env, capture_output=True, text=True, timeout=_APT_TIMEOUT_S
            )
        except subprocess.TimeoutExpired:
            return f"`{' '.join(args)}` timed out"
        if done.returncode != 0 and args[1] == "install":
            return f"`{' '.join(args)}` failed: {done.stderr.strip()[-300:]}"
    return None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, run it as `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.user = _unprivileged_user()
        self.root = Path(tempfile.mkdtemp(prefix="telugu-s2s-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://s2s@127.0.0.1:{self.port}/postgres"

    def _demote(self) -> None:  # in the child, before exec
        if self.user is not None:
            os.setgid(self.user.pw_gid)
            os.setgroups([])
            os.setuid(self.user.pw_uid)

    def _run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], preexec_fn=self._demote,
                              capture_output=True, text=True, **kw)  # fmt: skip

    def start(self) -> PostgresCluster:
        done = self._run("initdb", "-D", str(self.data), "-U", "s2s", "--auth=trust",
                         "--no-sync", "-E", "UTF8", timeout=120)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-500:]}")
        log = open(self.root / "postgres.log", "w")  # noqa: SIM115 - the server's lifetime
        if self.user is not None:
            os.chown(log.name, self.user.pw_uid, self.user.pw_gid)
        self.process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", "max_connections=60"],
            preexec_fn=self._demote, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self._accepting():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {self.log()[-800:]}")
            time.sleep(0.1)
        return self

    def _accepting(self) -> bool:
        import psycopg

        try:
            psycopg.connect(f"host=127.0.0.1 port={self.port} user=s2s dbname=postgres",
                            connect_timeout=2).close()  # fmt: skip
        except psycopg.OperationalError:
            return False
        return True

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def database(self) -> str:
        """A fresh, empty database: its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=s2s dbname=postgres",
                             autocommit=True) as connection:  # fmt: skip
            connection.execute(f"CREATE DATABASE {name}")
        return f"postgresql://s2s@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # immediate: the cluster is thrown away
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def unavailable_reason() -> str | None:
    """None when a cluster can start here; else a clear reason to skip."""
    if _server_bindir() is None:
        failure = _install_with_apt()
        if failure is not None:
            return failure
        if _server_bindir() is None:
            return "apt-get installed postgresql but no initdb/postgres binaries were found"
    return None


def start_cluster() -> PostgresCluster:
    bindir = _server_bindir()
    assert bindir is not None, unavailable_reason()
    return PostgresCluster(bindir).start()
