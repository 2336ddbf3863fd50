"""Port fallback: listen on the first free port of a list (8000, then 8080, then 8010).

The socket is bound and listening before the server starts and is handed to uvicorn, so no
other process can take the port between the check and the start.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence

DEFAULT_PORTS: tuple[int, ...] = (8000, 8080, 8010)
log = logging.getLogger(__name__)


class NoFreePort(OSError):
    pass


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # Like uvicorn: lets a restarted server reuse a port in TIME_WAIT (Linux still
        # refuses a port that another socket is listening on).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def listen_first_free(host: str, ports: Sequence[int] = DEFAULT_PORTS,
                      port: int | None = None) -> tuple[socket.socket, int]:  # fmt: skip
    """A listening socket on `port` if given (no fallback), else on the first free of `ports`."""
    candidates = [int(port)] if port is not None else [int(p) for p in ports]
    if not candidates:
        raise ValueError("no ports to try")
    taken: list[int] = []
    for candidate in candidates:
        try:
            sock = _listen(host, candidate)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            log.warning("port %d on %s is taken (%s)", candidate, host, exc.strerror)
            taken.append(candidate)
            continue
        bound = sock.getsockname()[1]
        note = f" ({', '.join(map(str, taken))} taken)" if taken else ""
        log.info("listening on %s:%d%s", host, bound, note)
        return sock, bound
    raise NoFreePort(errno.EADDRINUSE, f"ports {candidates} on {host} are all taken")
