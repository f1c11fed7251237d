"""Hugging Face Hub reads: config.json through hf_hub_download (revision, token, cache,
HF_HUB_OFFLINE), and safetensors / GGUF headers through bounded HTTP range requests.

Headers are read here rather than with huggingface_hub.get_safetensors_metadata because that
call keeps the whole response body: a server that ignores Range would stream the entire weights
file into memory. Every read below asks for a byte range and stops reading at the bytes it asked
for, whatever the server sends.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TextIO, TypeVar
from urllib.parse import urljoin, urlsplit

from ..errors import VramcalcError
from . import bounded_json
from .gguf_header import read_header as read_gguf_header
from .gguf_spec import spec_from_gguf
from .hf_config import spec_from_config, with_modelopt_config
from .limits import origin, redact
from .safetensors_header import MAX_HEADER_BYTES, SafetensorsError, SafetensorsHeader, parse_header

if TYPE_CHECKING:
    from . import ModelSource

FIRST_RANGE = 100_000  # first read of a safetensors file (huggingface_hub reads the same 100 KB)
TIMEOUT_S = float(os.environ.get("VRAMCALC_HTTP_TIMEOUT", "30"))  # connect and per-read, seconds
# One read (one fetch of a byte range, its retries, redirects and short answers included) ends by
# this deadline, however the server paces its bytes: a byte every few seconds never resets it.
DEADLINE_S = float(os.environ.get("VRAMCALC_HTTP_DEADLINE", "120"))
RETRIES = 1  # a dropped connection is tried once more; a timeout is not (it already cost TIMEOUT_S)
MAX_REDIRECTS = 10  # redirects followed by one read (the Hub sends one, to its CDN)
REDIRECTS = (301, 302, 303, 307, 308)


class HubError(VramcalcError):
    """A Hub or HTTP read that failed; its message never holds a URL's userinfo."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def _hub() -> Any:
    import huggingface_hub  # imported on first use: catalog-only runs stay fast and offline
    import huggingface_hub.constants  # noqa: F401  (lazy submodules: imported here, not found by attribute)
    import huggingface_hub.utils  # noqa: F401

    # huggingface_hub reads HF_HUB_OFFLINE once, at its import (constants.py); vramcalc reads it on every call,
    # so a process (a notebook) that sets or clears it later gets what the variable says now
    huggingface_hub.constants.HF_HUB_OFFLINE = offline()
    return huggingface_hub


def token_goes_to(url: str) -> bool:
    """Whether a request to `url` may carry the Hub token: only the Hub endpoint's own origin
    (HF_ENDPOINT, else https://huggingface.co: scheme, host and port) gets it, never another host,
    a redirect target included."""
    return origin(url) == origin(endpoint())


def _http() -> Any:
    """The HTTP client module huggingface_hub's session comes from (httpx, or httpx2 in huggingface_hub 2)."""
    import importlib

    return importlib.import_module(type(_hub().get_session()).__module__.split(".")[0])


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _explain(e: Exception, what: str) -> HubError:
    """One line for the errors a user meets: gated, missing, unauthorised, offline, network."""
    hub = _hub()
    errors = hub.errors
    if isinstance(e, errors.LocalEntryNotFoundError):  # a subclass of EntryNotFoundError: test it first
        return HubError(f"{what}: not in the local Hugging Face cache and the Hub cannot be reached"
                        + (" (HF_HUB_OFFLINE is set)" if offline() else ""))
    if isinstance(e, errors.GatedRepoError):
        return HubError(f"{what}: the repo is gated: accept its terms on the Hub and set HF_TOKEN")
    if isinstance(e, errors.RevisionNotFoundError):
        return HubError(f"{what}: no such revision")
    if isinstance(e, errors.EntryNotFoundError):
        return HubError(f"{what}: no such file in the repo")
    if isinstance(e, errors.RepositoryNotFoundError):
        return HubError(f"{what}: repo not found (or private: set HF_TOKEN)")
    http = _http()
    if isinstance(e, http.TimeoutException):
        return HubError(f"{what}: no answer within the timeout; the Hub cannot be reached in time")
    if isinstance(e, http.UnsupportedProtocol):  # a redirect to file:// or another scheme
        return HubError(f"{what}: redirected to a URL that is not http or https; refused ({str(e)[:80]})")
    if isinstance(e, http.TransportError):
        return HubError(f"{what}: the Hub cannot be reached ({type(e).__name__}: {str(e)[:80]})")
    if isinstance(e, errors.HfHubHTTPError):
        return HubError(f"{what}: the Hub answered {getattr(e.response, 'status_code', '?')}")
    return HubError(f"{what}: {type(e).__name__}: {e}")


def url_for(repo_id: str, filename: str, revision: str | None) -> str:
    return _hub().hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint())


PROGRESS_AFTER_S = 1.0  # a read that takes longer than this shows its progress on a terminal's stderr


class Progress:
    """One self-overwriting stderr line for network reads that take more than a moment; nothing
    when stderr is not a terminal (pipes, CI logs, notebooks)."""

    stream: TextIO | None = None  # tests put a terminal here; None: sys.stderr

    def __init__(self, what: str) -> None:
        self.what, self.note, self.nbytes = what, "", 0
        self.t0 = time.monotonic()
        self.shown = False

    def add(self, nbytes: int = 0, note: str | None = None) -> None:
        self.nbytes += nbytes
        self.note = self.note if note is None else note
        stream = self.stream or sys.stderr
        if time.monotonic() - self.t0 < PROGRESS_AFTER_S or not getattr(stream, "isatty", lambda: False)():
            return
        stream.write(f"\rvramcalc: reading {self.what}: {self.nbytes / 2**20:.1f} MiB{self.note}\x1b[K")
        stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            (self.stream or sys.stderr).write("\n")


class RangeReader:
    """fetch(offset, n) by HTTP Range over huggingface_hub's session, reading at most n bytes.

    Redirects are followed here, not by the HTTP client, so that each hop is checked: http and
    https only, at most MAX_REDIRECTS, and the token only on a hop to the Hub endpoint itself."""

    def __init__(self, url: str, token: str | None, what: str, progress: Progress | None = None) -> None:
        self.url, self.what, self.progress, self.token = url, redact(what), progress, token
        self.hub_headers: dict[str, str] | None = None
        self.bytes_read = 0
        self.requests = 0
        self.file_size: int | None = None  # the whole file's size, from a 206's Content-Range (RFC 9110 14.4)

    def headers_for(self, url: str) -> dict[str, str]:
        """huggingface_hub's headers, the token with them, for the Hub endpoint; for any other host
        plain ones, built without huggingface_hub (whose user agent itself asks the Hub things)."""
        if not token_goes_to(url):
            return {"User-Agent": "vramcalc", "Accept-Encoding": "identity"}
        if self.hub_headers is None:
            self.hub_headers = {**_hub().utils.build_hf_headers(token=self.token), "Accept-Encoding": "identity"}
        return dict(self.hub_headers)

    def __call__(self, offset: int, n: int) -> bytes:
        """n bytes from offset, fewer only at the end of the file. A server may answer a range with
        fewer bytes than asked (an honest shorter 206): ask again from where it stopped."""
        if offline():
            raise HubError(f"{self.what}: HF_HUB_OFFLINE is set and headers are not cached")
        deadline = time.monotonic() + DEADLINE_S
        out = b""
        while len(out) < n:
            got = self._with_retry(offset + len(out), n - len(out), deadline)
            if not got:
                break  # end of the file
            out += got
        return out

    def _late(self) -> HubError:
        return late(self.what)

    def _with_retry(self, offset: int, n: int, deadline: float) -> bytes:
        httpx = _http()
        for attempt in range(RETRIES + 1):
            try:
                return self._get(offset, n, deadline)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as e:
                if time.monotonic() >= deadline:
                    raise self._late() from None
                if attempt == RETRIES:
                    raise HubError(f"{self.what}: the connection failed {RETRIES + 1} times "
                                   f"({type(e).__name__}: {str(e)[:80] or 'closed by the server'})") from None
            except httpx.TimeoutException:
                if time.monotonic() >= deadline - 0.01:
                    raise self._late() from None
                raise HubError(f"{self.what}: no answer within {TIMEOUT_S:g} s (set VRAMCALC_HTTP_TIMEOUT to wait "
                               "longer)") from None
            except httpx.TransportError as e:  # UnsupportedProtocol, a bad URL ...: not worth a retry
                raise HubError(f"{self.what}: cannot be read ({type(e).__name__}: {str(e)[:80]})") from None
        raise AssertionError("unreachable")

    def _get(self, offset: int, n: int, deadline: float) -> bytes:
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https"):
                raise HubError(f"{self.what}: redirected to a {scheme or 'schemeless'} URL; only http and https "
                               "are followed")
            got = self._get_one(url, offset, n, deadline)
            if isinstance(got, bytes):
                return got
            url = got
        raise HubError(f"{self.what}: too many redirects (more than {MAX_REDIRECTS})")

    def _get_one(self, url: str, offset: int, n: int, deadline: float) -> bytes | str:
        """The bytes, or the URL a redirect points to."""
        httpx = _http()
        hub = _hub()
        left = deadline - time.monotonic()
        if left <= 0:
            raise self._late()
        headers = {**self.headers_for(url), "Range": f"bytes={offset}-{offset + n - 1}"}
        self.requests += 1
        try:
            with hub.get_session().stream("GET", url, headers=headers, timeout=min(TIMEOUT_S, left),
                                          follow_redirects=False) as r:
                if r.status_code in REDIRECTS and r.headers.get("location"):
                    return urljoin(url, r.headers["location"])
                if 300 <= r.status_code < 400:
                    raise HubError(f"{self.what}: the server answered {r.status_code} without a redirect to follow")
                if r.status_code == 416:
                    return b""  # asked past the end of the file
                hub.utils.hf_raise_for_status(r)
                if r.status_code == 200 and offset > 0:
                    raise HubError(f"{self.what}: the server ignores Range requests; refusing to download the "
                                   "file to reach its header")
                total = re.fullmatch(r"bytes \d+-\d+/(\d+)", r.headers.get("content-range", "").strip())
                if r.status_code == 206 and total:
                    self.file_size = int(total.group(1))
                watchdog = _watchdog(r, deadline)
                try:
                    out = bytearray()
                    for chunk in r.iter_bytes():  # a 200 at offset 0 is the file itself: keep the first n bytes
                        self.bytes_read += len(chunk)
                        if self.progress:
                            self.progress.add(len(chunk))
                        out += chunk[: n - len(out)]
                        if len(out) >= n:
                            break  # leaving the block closes the stream and stops the transfer
                        if time.monotonic() > deadline:
                            raise self._late()
                    return bytes(out)
                finally:  # before the connection can go back to the pool
                    if watchdog is not None:
                        watchdog.cancel()
        except (HubError, httpx.TransportError, httpx.TooManyRedirects):
            raise  # transport errors: _with_retry decides
        except Exception as e:  # HTTP status errors
            raise _explain(e, self.what) from None


def _watchdog(response: Any, deadline: float) -> threading.Timer | None:
    """A timer that shuts the response's socket at the deadline, so that a read blocked on a
    server pacing its bytes ends then, not one read timeout later."""
    stream = response.extensions.get("network_stream") if hasattr(response, "extensions") else None
    sock = stream.get_extra_info("socket") if stream is not None else None
    if not isinstance(sock, socket.socket):
        return None

    def cut() -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    timer.daemon = True
    timer.start()
    return timer


class _TooLarge(Exception):
    pass


T = TypeVar("T")


def late(what: str) -> HubError:
    return HubError(f"{what}: not read within {DEADLINE_S:g} s, the limit on one read "
                    "(set VRAMCALC_HTTP_DEADLINE to wait longer)")


def within_deadline(call: Callable[[], T], what: str, progress: Any = None) -> T:
    """`call()` (a huggingface_hub read: its HEAD, its download) ended by DEADLINE_S. huggingface_hub
    times each socket read, not the whole; the call runs in a daemon thread and is given up at the
    deadline, its download stopped at the next chunk (`progress.abandoned`) and bounded in bytes."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name="vramcalc-hub-read", daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    if worker.is_alive():
        if progress is not None:
            progress.abandoned = True
        raise late(what)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _capped_progress() -> Any:
    """huggingface_hub's progress bar class, counting the bytes a download actually receives and
    stopping it past MAX_JSON_BYTES: a HEAD answer that under-states the size lets nothing larger in."""
    base: Any = _hub().utils.tqdm

    class Capped(base):  # type: ignore[misc, valid-type]
        abandoned = False  # set on the class when the read is given up: the download stops at its next chunk

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.received = int(kwargs.get("initial") or 0)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            self.received += int(n or 0)
            if self.received > bounded_json.MAX_JSON_BYTES or self.abandoned:
                raise _TooLarge(self.received)
            return super().update(n)

    return Capped


def download_json(repo_id: str, filename: str, revision: str | None, token: str | None) -> Any:
    """A small JSON file of the repo through hf_hub_download (its cache, revision, token, offline
    mode), refused before the download when the Hub says it is larger than any real model file,
    and stopped during it when the bytes received pass that size whatever the Hub said."""
    hub = _hub()
    what = f"{repo_id}@{revision or 'main'} {filename}"
    limit = bounded_json.MAX_JSON_BYTES
    if not offline():
        size = _file_size(repo_id, filename, revision, token)
        if size is not None and size > limit:
            raise HubError(f"{what}: {size:,} bytes, larger than any real model file; not downloaded")
    try:
        progress = _capped_progress()
        path = within_deadline(lambda: hub.hf_hub_download(
            repo_id, filename, revision=revision, token=token, endpoint=endpoint(), local_files_only=offline(),
            cache_dir=os.environ.get("HF_HUB_CACHE"), tqdm_class=progress), what, progress)
    except HubError:
        raise
    except _TooLarge:
        raise HubError(f"{what}: more than {limit:,} bytes received (the limit on a JSON file), though the Hub "
                       "announced less; the download was stopped") from None
    except Exception as e:
        raise _explain(e, what) from None
    return bounded_json.read(Path(path), what)


def download_config(repo_id: str, revision: str | None, token: str | None) -> dict:
    cfg = download_json(repo_id, "config.json", revision, token)
    if not isinstance(cfg, dict):
        raise HubError(f"{repo_id}@{revision or 'main'} config.json: not a JSON object")
    return cfg


def _file_size(repo_id: str, filename: str, revision: str | None, token: str | None) -> int | None:
    """The file's size from the Hub's HEAD answer; None when it has no such file."""
    hub = _hub()
    try:
        return within_deadline(lambda: hub.get_hf_file_metadata(url_for(repo_id, filename, revision), token=token).size,
                               f"{repo_id}@{revision or 'main'} {filename}")
    except HubError:
        raise
    except (hub.errors.EntryNotFoundError, hub.errors.RemoteEntryNotFoundError):
        return None
    except Exception as e:
        raise _explain(e, f"{repo_id}@{revision or 'main'} {filename}") from None


def _file_exists(repo_id: str, filename: str, revision: str | None, token: str | None) -> bool:
    return _file_size(repo_id, filename, revision, token) is not None


def safetensors_header(repo_id: str, filename: str, revision: str | None, token: str | None,
                       counter: list[int], progress: Progress | None = None) -> SafetensorsHeader:
    what = f"{repo_id}@{revision or 'main'} {filename}"
    fetch = RangeReader(url_for(repo_id, filename, revision), token, what, progress)
    first = fetch(0, FIRST_RANGE)
    if len(first) < 8:
        raise SafetensorsError(f"{what}: too short for a safetensors file")
    n = int.from_bytes(first[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise SafetensorsError(f"{what}: header length {n} exceeds the {MAX_HEADER_BYTES:,}-byte limit")
    raw = first[8:8 + n] if len(first) >= 8 + n else first[8:] + fetch(len(first), 8 + n - len(first))
    if len(raw) < n:
        raise SafetensorsError(f"{what}: header cut short ({len(raw)} of {n} bytes)")
    counter[0] += fetch.bytes_read
    # the data offsets are bounded by the file's size where the server states it (Content-Range)
    return parse_header(raw, what, fetch.file_size).model_copy(update={"header_bytes": 8 + n})


def read_repo(repo_id: str, revision: str | None = None, token: str | None = None) -> ModelSource:
    """ModelSpec from config.json and exact weight bytes from the safetensors headers."""
    from . import ModelSource  # the shared result type

    token = token or os.environ.get("HF_TOKEN")
    cfg = download_config(repo_id, revision, token)
    if not cfg.get("quantization_config") and (offline() or _file_exists(repo_id, "hf_quant_config.json", revision, token)):
        try:
            cfg = with_modelopt_config(cfg, download_json(repo_id, "hf_quant_config.json", revision, token))
        except HubError:
            if not offline():
                raise  # offline, a repo without the file has none in the cache either
    spec = spec_from_config(cfg, model_id=repo_id, source=f"hub:{repo_id}@{revision or 'main'}",
                            where=f"{repo_id}/config.json")
    if offline():
        return ModelSource(spec=spec)
    counter = [0]
    if _file_exists(repo_id, "model.safetensors", revision, token):
        files = ["model.safetensors"]
    elif _file_exists(repo_id, "model.safetensors.index.json", revision, token):
        index = download_json(repo_id, "model.safetensors.index.json", revision, token)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise HubError(f"{repo_id} model.safetensors.index.json: no weight_map")
        files = sorted(set(weight_map.values()))
    else:
        return ModelSource(spec=spec.model_copy(update={"notes": spec.notes + (
            "no safetensors in the repo: weights estimated from the config",)}))
    tensors, by_dtype = 0, {}  # type: int, dict[str, int]
    progress = Progress(f"{repo_id} safetensors headers")
    for i, name in enumerate(files):
        progress.add(note=f" (file {i + 1} of {len(files)})")
        h = safetensors_header(repo_id, name, revision, token, counter, progress)
        tensors += h.data_bytes
        for k, v in h.bytes_by_dtype().items():
            by_dtype[k] = by_dtype.get(k, 0) + v
    progress.done()
    return ModelSource(spec=spec, weight_bytes=tensors, weight_bytes_by_dtype=by_dtype, header_bytes_read=counter[0])


GGUF_REF = re.compile(r"^(?P<repo>[\w.\-]+/[\w.\-]+)/(?P<file>[^\s]+\.gguf)$")


def read_remote_gguf(ref: str, revision: str | None = None, token: str | None = None) -> ModelSource:
    """`org/repo/path/file.gguf` on the Hub, or an http(s) URL: the header by range requests."""
    from . import ModelSource

    token = token or os.environ.get("HF_TOKEN")
    if ref.startswith(("http://", "https://")):
        url, what, name = ref, redact(ref), ref.rsplit("/", 1)[-1]
    else:
        m = GGUF_REF.match(ref)
        if not m:
            raise HubError(f"{ref}: expected org/repo/file.gguf or a URL")
        url, what, name = url_for(m["repo"], m["file"], revision), ref, m["file"]
    progress = Progress(f"{what} header")
    fetch = RangeReader(url, token, what, progress)
    try:
        header, _ = read_gguf_header(fetch, what)
    finally:
        progress.done()
    spec = spec_from_gguf(header, model_id=name, source=f"gguf:{redact(ref)}", where=what)
    return ModelSource(spec=spec, weight_bytes=header.data_bytes, weight_bytes_by_dtype=header.bytes_by_type(),
                       header_bytes_read=fetch.bytes_read,
                       gguf_tensors=[(t.name, t.ne, t.type) for t in header.tensors], gguf_header=header)


def looks_like_repo_id(name: str) -> bool:
    return re.fullmatch(r"[\w.\-]+/[\w.\-]+", name) is not None

