"""GGUF headers, read incrementally from any byte source: a local file or HTTP range requests.

Layout (ggml docs/gguf.md, versions 2 and 3): magic "GGUF", u32 version, u64 tensor count,
u64 metadata count; metadata as (string key, u32 type, value); tensor infos as (string name,
u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset); tensor data after the infos, aligned to
general.alignment (default 32). Every length and count is bounded before anything is allocated;
large arrays (the tokenizer's) are skipped over, keeping only their length.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable

from pydantic import BaseModel, ConfigDict

from ..errors import VramcalcError
from ..ggml import types as ggml_types
from .limits import regular_file_size

# Every bound below is checked before anything is allocated or fetched, and named in its error.
MAX_HEADER = 64 * 2**20  # the whole header (the largest vocabularies make ~10 MB)
MAX_STRING = 16 * 2**20  # one string (a chat template is tens of KB)
MAX_ARRAY = 2**26  # elements in one array (vocabularies are ~2^18)
MAX_KV = 2**16  # metadata entries (real files hold ~50)
# Tensors in one file: real ones hold at most a few thousand (experts are merged into 3-D tensors),
# and each costs about 1 KB once read, so 2^16 bounds a header's tensor list to some 100 MB.
MAX_TENSORS = 2**16
MAX_NAME = 64  # GGML_MAX_NAME: llama.cpp refuses a tensor name of 64 bytes or more
KEEP_ARRAY = 4096  # arrays up to this many elements are kept (per-layer values); longer ones: length only
MAX_KEPT = 2**20  # array elements kept over the whole header (real files: a few thousand)
MAX_DIMS = 4  # GGML_MAX_DIMS
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class GGUFError(VramcalcError):
    pass


class GGUFTensorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    ne: tuple[int, ...]
    type: str
    offset: int
    nbytes: int


class GGUFHeader(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    metadata: dict[str, Any]  # long arrays appear as {"array_length": n, "type": t}
    tensors: list[GGUFTensorInfo]
    header_bytes: int  # bytes up to the start of tensor data (aligned)

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def bytes_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.type] = out.get(t.type, 0) + t.nbytes
        return out


class _Reader:
    """Sequential reads over a read(offset, n) callable, fetching ahead in chunks."""

    def __init__(self, fetch: Callable[[int, int], bytes], where: str, chunk: int = 2**20):
        self.fetch, self.where, self.chunk = fetch, where, chunk
        self.buf, self.buf_start, self.pos = b"", 0, 0
        self.fetched = 0
        self.kept = 0  # array elements kept so far (MAX_KEPT)

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if end > MAX_HEADER:  # bounds what a local or remote read may fetch, whatever counts claim
            raise GGUFError(f"{self.where}: header larger than {MAX_HEADER // 2**20} MiB: not a plausible GGUF")
        while end > self.buf_start + len(self.buf):
            want = max(self.chunk, end - self.buf_start - len(self.buf))
            got = self.fetch(self.buf_start + len(self.buf), want)
            self.fetched += len(got)
            if not got:
                raise GGUFError(f"{self.where}: the file ends inside its header (at byte {self.buf_start + len(self.buf)})")
            self.buf += got
        off = self.pos - self.buf_start
        out = self.buf[off:off + n]
        self.pos = end
        if self.pos - self.buf_start > 4 * self.chunk:  # drop what is behind us
            cut = self.pos - self.buf_start
            self.buf, self.buf_start = self.buf[cut:], self.pos
        return out

    def u32(self) -> int:
        return struct.unpack("<I", self.read(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.read(8))[0]

    def _string_length(self, what: str, limit: int = MAX_STRING) -> int:
        n = self.u64()
        if n > limit:
            raise GGUFError(f"{self.where}: {what} claims a string of {n:,} bytes, over the limit of {limit:,}")
        return n

    def skip_string(self, what: str) -> None:
        self.read(self._string_length(what))

    def string(self, what: str, limit: int = MAX_STRING) -> str:
        raw = self.read(self._string_length(what, limit))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace")

    def value(self, vtype: int, key: str, depth: int = 0, keep: bool = True) -> Any:
        """One metadata value; keep=False reads past it, keeping nothing (the elements of a long array)."""
        if vtype in _SCALARS:
            fmt = _SCALARS[vtype]
            raw = self.read(struct.calcsize(fmt))
            return struct.unpack(fmt, raw)[0] if keep else None
        if vtype == 8:
            if not keep:
                self.skip_string(f"metadata {key!r}")
                return None
            return self.string(f"metadata {key!r}")
        if vtype == 9:
            if depth > 2:
                raise GGUFError(f"{self.where}: metadata {key!r} nests arrays too deeply")
            etype, count = self.u32(), self.u64()
            if count > MAX_ARRAY:
                raise GGUFError(f"{self.where}: metadata {key!r} claims an array of {count:,} elements, over the "
                                f"limit of {MAX_ARRAY:,} per array")
            if etype not in _SCALARS and etype not in (8, 9):
                raise GGUFError(f"{self.where}: metadata {key!r} has array element type {etype}")
            if count > KEEP_ARRAY or not keep:  # its length only: skipped over, nothing kept
                if etype in _SCALARS:
                    self.read(count * struct.calcsize(_SCALARS[etype]))
                else:
                    for _ in range(count):
                        self.value(etype, key, depth + 1, keep=False)
                return {"array_length": count, "type": etype}
            self.kept += count
            if self.kept > MAX_KEPT:
                raise GGUFError(f"{self.where}: metadata arrays hold more than {MAX_KEPT:,} short-array elements "
                                "in all, over the limit per header: not a plausible GGUF")
            return [self.value(etype, key, depth + 1) for _ in range(count)]
        raise GGUFError(f"{self.where}: metadata {key!r} has unknown value type {vtype}")


def read_header(fetch: Callable[[int, int], bytes], where: str, file_size: int | None = None) -> tuple[GGUFHeader, int]:
    """Parse a GGUF header through `fetch(offset, n)`. Returns the header and the bytes fetched."""
    r = _Reader(fetch, where)
    if r.read(4) != b"GGUF":
        raise GGUFError(f"{where}: not a GGUF file (bad magic)")
    version = r.u32()
    if version not in (2, 3):
        raise GGUFError(f"{where}: GGUF version {version} is not supported (2 and 3 are)")
    n_tensors, n_kv = r.u64(), r.u64()
    if n_tensors > MAX_TENSORS:
        raise GGUFError(f"{where}: header claims {n_tensors:,} tensors, over the limit of {MAX_TENSORS:,} per file")
    if n_kv > MAX_KV:
        raise GGUFError(f"{where}: header claims {n_kv:,} metadata entries, over the limit of {MAX_KV:,} per file")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string("a metadata key")
        metadata[key] = r.value(r.u32(), key)
    by_id = {t.id: t for t in ggml_types().values()}
    infos = []
    for _ in range(n_tensors):
        name = r.string("a tensor name", MAX_NAME - 1)
        n_dims = r.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"{where}: tensor {name!r} has {n_dims} dimensions")
        ne = tuple(r.u64() for _ in range(n_dims))
        if any(d >= 2**48 for d in ne):
            raise GGUFError(f"{where}: tensor {name!r} has an absurd dimension {max(ne):,}")
        type_id, offset = r.u32(), r.u64()
        t = by_id.get(type_id)
        if t is None:
            raise GGUFError(f"{where}: tensor {name!r} has unknown ggml type {type_id}")
        if ne[0] % t.block:
            raise GGUFError(f"{where}: tensor {name!r}: row of {ne[0]} is not a multiple of {t.name}'s block {t.block}")
        nbytes = ne[0] // t.block * t.block_bytes
        for d in ne[1:]:
            nbytes *= d
        infos.append(GGUFTensorInfo(name=name, ne=ne, type=t.name, offset=offset, nbytes=nbytes))
    align = metadata.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise GGUFError(f"{where}: general.alignment {align!r} is not a power of two")
    data_start = (r.pos + align - 1) // align * align
    if file_size is not None:
        for info in infos:
            if data_start + info.offset + info.nbytes > file_size:
                raise GGUFError(f"{where}: tensor {info.name!r} ends past the end of the file: truncated or corrupt")
    return GGUFHeader(version=version, metadata=metadata, tensors=infos, header_bytes=data_start), r.fetched


def _file_fetch(f: BinaryIO) -> Callable[[int, int], bytes]:
    def fetch(offset: int, n: int) -> bytes:
        f.seek(offset)
        return f.read(n)
    return fetch


def read_file(path: str | Path) -> GGUFHeader:
    path = Path(path)
    size = regular_file_size(path, GGUFError)  # a FIFO named like a GGUF is refused, not opened
    try:
        with path.open("rb") as f:
            return read_header(_file_fetch(f), str(path), size)[0]
    except OSError as e:
        raise GGUFError(f"{path}: cannot read ({e.strerror or e})") from None


def split_paths(path: Path) -> list[Path]:
    """All parts of a split GGUF (name-00001-of-00003.gguf), or just the file."""
    import re

    m = re.match(r"(.*)-(\d{5})-of-(\d{5})\.gguf$", path.name)
    if not m:
        return [path]
    n = int(m.group(3))
    parts = [path.with_name(f"{m.group(1)}-{i:05d}-of-{n:05d}.gguf") for i in range(1, n + 1)]
    missing = [p.name for p in parts if not os.path.lexists(p)]  # a dangling link is refused by read_file
    if missing:
        raise GGUFError(f"{path}: split GGUF is missing {', '.join(missing)}")
    return parts


def read_local(path: str | Path) -> GGUFHeader:
    """A GGUF file, or every part of a split one merged (metadata from the first part)."""
    parts = split_paths(Path(path))
    headers = [read_file(p) for p in parts]
    if len(headers) == 1:
        return headers[0]
    return GGUFHeader(version=headers[0].version, metadata=headers[0].metadata,
                      tensors=[t for h in headers for t in h.tensors],
                      header_bytes=sum(h.header_bytes for h in headers))
