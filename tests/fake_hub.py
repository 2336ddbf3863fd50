"""A minimal Hugging Face Hub over real HTTP on 127.0.0.1, for tests of `telugu_s2s.hub`.

It speaks the part of the Hub API that `huggingface_hub` uses to create a repo, commit files
(every file "regular": inline base64 in the NDJSON commit) and download a snapshot. Nothing
in huggingface_hub is patched: the client talks to this server through its own HTTP stack.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

REPO = r"(?P<repo>[^/]+/[^/]+)"


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None


@dataclass
class FakeHub:
    url: str = ""
    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)  # repo -> path -> bytes
    commits: list[dict] = field(default_factory=list)  # {"repo", "summary", "files": {path: bytes}}
    requests: list[Request] = field(default_factory=list)

    def sha(self, repo: str) -> str:
        files = self.repos.get(repo, {})
        digest = hashlib.sha1(
            json.dumps(sorted((p, hashlib.sha1(b).hexdigest()) for p, b in files.items())).encode()
        )
        return digest.hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head=False):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, payload, head=False) -> None:
            self._send(
                status, json.dumps(payload).encode(), {"Content-Type": "application/json"}, head
            )

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _record(self) -> str:
            path = urlparse(self.path).path
            hub.requests.append(Request(self.command, path, self.headers.get("Authorization")))
            return path

        def _missing(self, head=False) -> None:
            self._send(404, b'{"error":"Repository not found"}',
                       {"Content-Type": "application/json", "X-Error-Code": "RepoNotFound"}, head)  # fmt: skip

        def do_POST(self) -> None:
            path, body = self._record(), self._body()
            if path == "/api/repos/create":
                args = json.loads(body)
                repo = (
                    f"{args['organization']}/{args['name']}"
                    if args.get("organization")
                    else args["name"]
                )
                hub.repos.setdefault(repo, {})
                return self._json(200, {"url": f"{hub.url}/{repo}", "name": repo})
            if path == "/api/validate-yaml":
                return self._json(200, {"errors": [], "warnings": []})
            if m := re.fullmatch(rf"/api/models/{REPO}/preupload/[^/]+", path):
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                         for f in json.loads(body)["files"]]  # fmt: skip
                return self._json(200, {"files": files})
            if m := re.fullmatch(rf"/api/models/{REPO}/commit/[^/]+", path):
                repo, lines = m["repo"], [json.loads(x) for x in body.splitlines() if x.strip()]
                if repo not in hub.repos:
                    return self._missing()
                header = next(x["value"] for x in lines if x["key"] == "header")
                files = {x["value"]["path"]: base64.b64decode(x["value"]["content"])
                         for x in lines if x["key"] == "file"}  # fmt: skip
                hub.repos[repo].update(files)
                hub.commits.append({"repo": repo, "summary": header["summary"], "files": files})
                sha = hub.sha(repo)
                return self._json(200, {"commitUrl": f"{hub.url}/{repo}/commit/{sha}",
                                        "commitOid": sha, "pullRequestUrl": None})  # fmt: skip
            self._send(404)

        def _get(self, head: bool) -> None:
            path = self._record()
            if m := re.fullmatch(rf"/api/models/{REPO}/revision/[^/]+", path):
                if m["repo"] not in hub.repos:
                    return self._missing(head)
                files = hub.repos[m["repo"]]
                return self._json(200, {"id": m["repo"], "sha": hub.sha(m["repo"]), "private": False,
                                        "siblings": [{"rfilename": p} for p in sorted(files)]}, head)  # fmt: skip
            if m := re.fullmatch(rf"/api/models/{REPO}/tree/[^/]+(/.*)?", path):
                if m["repo"] not in hub.repos:
                    return self._missing(head)
                tree = [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                        for p, b in sorted(hub.repos[m["repo"]].items())]  # fmt: skip
                return self._json(200, tree, head)
            if m := re.fullmatch(rf"/{REPO}/resolve/[^/]+/(?P<file>.+)", path):
                files = hub.repos.get(m["repo"])
                if files is None:
                    return self._missing(head)
                content = files.get(unquote(m["file"]))
                if content is None:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                headers = {"X-Repo-Commit": hub.sha(m["repo"]),
                           "ETag": f'"{hashlib.sha1(content).hexdigest()}"'}  # fmt: skip
                return self._send(200, content, headers, head)
            self._send(404, b"", None, head)

        def do_GET(self) -> None:
            self._get(head=False)

        def do_HEAD(self) -> None:
            self._get(head=True)

    return Handler


class running_fake_hub:
    """`with running_fake_hub() as hub:` serves a FakeHub at `hub.url` until the block ends."""

    def __enter__(self) -> FakeHub:
        self.hub = FakeHub()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self.hub

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
