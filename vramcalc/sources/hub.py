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
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import VramcalcError
from . import bounded_json
from .gguf_header import read_header as read_gguf_header
from .gguf_spec import spec_from_gguf
from .hf_config import spec_from_config, with_modelopt_config
from .safetensors_header import MAX_HEADER_BYTES, SafetensorsError, SafetensorsHeader, parse_header

if TYPE_CHECKING:
    from . import ModelSource

FIRST_RANGE = 100_000  # first read of a safetensors file (huggingface_hub reads the same 100 KB)
TIMEOUT_S = float(os.environ.get("VRAMCALC_HTTP_TIMEOUT", "30"))  # connect and per-read, seconds
RETRIES = 1  # a dropped connection is tried once more; a timeout is not (it already cost TIMEOUT_S)


class HubError(VramcalcError):
    pass


def _hub() -> Any:
    import huggingface_hub  # imported on first use: catalog-only runs stay fast and offline

    return huggingface_hub


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

    def __init__(self, what: str):
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
    """fetch(offset, n) by HTTP Range over huggingface_hub's session, reading at most n bytes."""

    def __init__(self, url: str, token: str | None, what: str, progress: Progress | None = None):
        self.url, self.what, self.progress = url, what, progress
        self.headers = _hub().utils.build_hf_headers(token=token)
        self.headers["Accept-Encoding"] = "identity"
        self.bytes_read = 0
        self.requests = 0

    def __call__(self, offset: int, n: int) -> bytes:
        """n bytes from offset, fewer only at the end of the file. A server may answer a range with
        fewer bytes than asked (an honest shorter 206): ask again from where it stopped."""
        if offline():
            raise HubError(f"{self.what}: HF_HUB_OFFLINE is set and headers are not cached")
        out = b""
        while len(out) < n:
            got = self._with_retry(offset + len(out), n - len(out))
            if not got:
                break  # end of the file
            out += got
        return out

    def _with_retry(self, offset: int, n: int) -> bytes:
        httpx = _http()
        for attempt in range(RETRIES + 1):
            try:
                return self._get(offset, n)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as e:
                if attempt == RETRIES:
                    raise HubError(f"{self.what}: the connection failed {RETRIES + 1} times "
                                   f"({type(e).__name__}: {str(e)[:80] or 'closed by the server'})") from None
            except httpx.TimeoutException:
                raise HubError(f"{self.what}: no answer within {TIMEOUT_S:g} s (set VRAMCALC_HTTP_TIMEOUT to wait "
                               "longer)") from None
            except httpx.TooManyRedirects:
                raise HubError(f"{self.what}: too many redirects") from None
        raise AssertionError("unreachable")

    def _get(self, offset: int, n: int) -> bytes:
        httpx = _http()
        hub = _hub()
        headers = {**self.headers, "Range": f"bytes={offset}-{offset + n - 1}"}
        self.requests += 1
        try:
            with hub.get_session().stream("GET", self.url, headers=headers, timeout=TIMEOUT_S,
                                          follow_redirects=True) as r:
                if r.status_code == 416:
                    return b""  # asked past the end of the file
                hub.utils.hf_raise_for_status(r)
                if r.status_code == 200 and offset > 0:
                    raise HubError(f"{self.what}: the server ignores Range requests; refusing to download the "
                                   "file to reach its header")
                out = bytearray()
                for chunk in r.iter_bytes():  # a 200 at offset 0 is the file itself: keep the first n bytes
                    self.bytes_read += len(chunk)
                    if self.progress:
                        self.progress.add(len(chunk))
                    out += chunk[: n - len(out)]
                    if len(out) >= n:
                        break  # leaving the block closes the stream and stops the transfer
                return bytes(out)
        except (HubError, httpx.TransportError, httpx.TooManyRedirects):
            raise  # transport errors: _with_retry decides
        except Exception as e:  # HTTP status errors
            raise _explain(e, self.what) from None


def download_json(repo_id: str, filename: str, revision: str | None, token: str | None) -> Any:
    """A small JSON file of the repo through hf_hub_download (its cache, revision, token, offline
    mode), refused before the download when the Hub says it is larger than any real model file."""
    hub = _hub()
    what = f"{repo_id}@{revision or 'main'} {filename}"
    if not offline():
        size = _file_size(repo_id, filename, revision, token)
        if size is not None and size > bounded_json.MAX_JSON_BYTES:
            raise HubError(f"{what}: {size:,} bytes, larger than any real model file; not downloaded")
    try:
        path = hub.hf_hub_download(repo_id, filename, revision=revision, token=token, endpoint=endpoint(),
                                   local_files_only=offline(), cache_dir=os.environ.get("HF_HUB_CACHE"))
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
        return hub.get_hf_file_metadata(url_for(repo_id, filename, revision), token=token).size
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
    return parse_header(raw, what).model_copy(update={"header_bytes": 8 + n})


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
        url, what, name = ref, ref, ref.rsplit("/", 1)[-1]
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
    spec = spec_from_gguf(header, model_id=name, source=f"gguf:{ref}", where=what)
    return ModelSource(spec=spec, weight_bytes=header.data_bytes, weight_bytes_by_dtype=header.bytes_by_type(),
                       header_bytes_read=fetch.bytes_read,
                       gguf_tensors=[(t.name, t.ne, t.type) for t in header.tensors])


def looks_like_repo_id(name: str) -> bool:
    return re.fullmatch(r"[\w.\-]+/[\w.\-]+", name) is not None

