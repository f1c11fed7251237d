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
import socket
import threading
import time
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
    # network faults, per file name: a stall before answering (s), connections dropped before any
    # answer (how many, then it serves), a cap on each range answer (an honest shorter 206), a body cut
    # short of its Content-Length, and a redirect of the file to another server (a CDN, as the Hub does)
    stall: dict[str, float] = field(default_factory=dict)
    resets: dict[str, int] = field(default_factory=dict)
    range_cap: int | None = None
    truncate: set[str] = field(default_factory=set)
    redirect: dict[str, str] = field(default_factory=dict)
    # hostile servers, per file name: a body paced one byte every `trickle` seconds (at most
    # trickle_bytes of them, so the handler ends by itself), a HEAD that states a smaller size than
    # the body, and a redirect to an exact Location (file://..., another host)
    trickle: dict[str, float] = field(default_factory=dict)
    trickle_bytes: int = 40
    head_size: dict[str, int] = field(default_factory=dict)
    location: dict[str, str] = field(default_factory=dict)


@dataclass
class HubServer:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[dict] = field(default_factory=list)
    host: str = "127.0.0.1"  # another loopback address (127.0.0.2) is another host to a client
    requests: list[dict] = field(default_factory=list)  # every request as it arrives: method, path, headers

    def start(self) -> str:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the tests read hub.log instead
                return None

            def do_HEAD(self):
                self._record()
                self._serve(head=True)

            def do_GET(self):
                self._record()
                self._serve(head=False)

            def _record(self):
                hub.requests.append({"method": self.command, "path": self.path,
                                     "authorization": self.headers.get("Authorization")})

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
                if not head and repo.resets.get(filename, 0) > 0:  # drop the connection unanswered
                    repo.resets[filename] -= 1
                    hub.log.append({"path": self.path, "status": "reset", "sent": 0, "file": filename})
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    self.close_connection = True
                    return None
                if not head and filename in repo.stall:
                    time.sleep(repo.stall[filename])
                if not head and filename in repo.location:
                    self.send_response(302)
                    self.send_header("Location", repo.location[filename])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    hub.log.append({"path": self.path, "status": 302, "sent": 0, "file": filename})
                    return None
                if not head and filename in repo.redirect:
                    self.send_response(302)
                    self.send_header("Location", f"{repo.redirect[filename]}/{filename}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    hub.log.append({"path": self.path, "status": 302, "sent": 0, "file": filename})
                    return None
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
                        hub.log.append({"path": self.path, "status": 416, "sent": 0, "file": filename})
                        return
                    status = 206
                    if repo.range_cap is not None:
                        end = min(end, start + repo.range_cap - 1)
                body = data[start:end + 1]
                self.send_response(status)
                self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(repo.head_size[filename] if head and filename in repo.head_size
                                                      else len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                sent = 0
                if not head and filename in repo.truncate:  # promise the body, send half, hang up
                    half = body[: len(body) // 2]
                    self.wfile.write(half)
                    self.wfile.flush()
                    self.close_connection = True
                    hub.log.append({"path": self.path, "status": status, "sent": len(half), "range": rng,
                                    "head": head, "file": filename})
                    return None
                if not head and filename in repo.trickle:  # a byte at a time, slowly: a slow-loris server
                    try:
                        for i in range(min(len(body), repo.trickle_bytes)):
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            sent += 1
                            time.sleep(repo.trickle[filename])
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up mid-trickle (its deadline cut it): what was sent is logged
                    self.close_connection = True
                elif not head:
                    try:
                        for i in range(0, len(body), 65536):
                            self.wfile.write(body[i:i + 65536])
                            sent += len(body[i:i + 65536])
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client stopped reading: what was sent is logged
                hub.log.append({"path": self.path, "status": status, "sent": sent, "range": rng,
                                "head": head, "file": filename, "auth": bool(self.headers.get("Authorization"))})

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return f"http://{self.host}:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sent(self, filename: str) -> int:
        return sum(e["sent"] for e in self.log if e.get("file") == filename)


def repo_from_folder(folder: Path, **kw) -> Repo:
    return Repo(files={p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}, **kw)
