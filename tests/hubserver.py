"""A local HTTP server laid out as the Hugging Face Hub serves files, for the real huggingface_hub
client (HF_ENDPOINT=http://127.0.0.1:PORT). Loopback only; it stops with the test.

GET/HEAD /{org}/{name}/resolve/{revision}/{path}: the file, with the Hub's headers (ETag,
X-Repo-Commit, Accept-Ranges) and Range support; 404 + X-Error-Code for a missing repo or file;
401 for a private repo without the right token; 403 GatedRepo for a gated one. Every response's
byte count is logged so tests can check what was downloaded.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Repo:
    files: dict[str, bytes]
    token: str | None = None  # private: needs "Authorization: Bearer <token>"
    gated: bool = False
    ignore_range: bool = False  # misbehaving server: answers 200 with the whole body
    revisions: tuple[str, ...] = ("main", COMMIT)


@dataclass
class HubServer:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tests read hub.log instead
                return None

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

            def _error(self, code: int, error_code: str, message: str):
                body = message.encode()
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                hub.log.append({"path": self.path, "status": code, "sent": 0})

            def _serve(self, head: bool):
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
                if not m:
                    return self._error(404, "RepoNotFound", "not found")
                repo_id, revision, filename = m.groups()
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                auth = self.headers.get("Authorization", "")
                if repo.token is not None and auth != f"Bearer {repo.token}":
                    return self._error(401, "RepoNotFound", "Invalid credentials")
                if repo.gated and auth != "Bearer gate-ok":
                    return self._error(403, "GatedRepo", "Access to this model is restricted")
                if revision not in repo.revisions:
                    return self._error(404, "RevisionNotFound", "Invalid rev id")
                data = repo.files.get(filename)
                if data is None:
                    return self._error(404, "EntryNotFound", "Entry not found")
                start, end, status = 0, len(data) - 1, 200
                rng = self.headers.get("Range")
                if rng and not repo.ignore_range:
                    r = re.match(r"bytes=(\d+)-(\d*)$", rng)
                    start = int(r.group(1))
                    end = min(int(r.group(2)) if r.group(2) else len(data) - 1, len(data) - 1)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        hub.log.append({"path": self.path, "status": 416, "sent": 0})
                        return
                    status = 206
                body = data[start:end + 1]
                self.send_response(status)
                self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                sent = 0
                if not head:
                    try:
                        for i in range(0, len(body), 65536):
                            self.wfile.write(body[i:i + 65536])
                            sent += len(body[i:i + 65536])
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client stopped reading: what was sent is logged
                hub.log.append({"path": self.path, "status": status, "sent": sent, "range": rng,
                                "head": head, "file": filename})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sent(self, filename: str) -> int:
        return sum(e["sent"] for e in self.log if e.get("file") == filename)


def repo_from_folder(folder: Path, **kw) -> Repo:
    return Repo(files={p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}, **kw)
