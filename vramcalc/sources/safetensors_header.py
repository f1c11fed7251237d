"""Safetensors headers: 8-byte little-endian length, then that many bytes of JSON
(https://github.com/huggingface/safetensors, format section). Only the header is read.

The header is checked before it is trusted: its length against the file and a cap, every tensor's
dtype, shape and data_offsets against each other and the data region, so a truncated or hostile
file gives one clear error and nothing past the header is read or allocated.
"""

from __future__ import annotations

import json
import os
import re
import struct
from math import prod
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ConfigDict

from . import bounded_json
from .limits import regular_file_size
from ..errors import VramcalcError
from ..params import group_of

# The safetensors library refuses headers over 100,000,000 bytes (MAX_HEADER_SIZE in its Rust
# core); real 1T-parameter shards have headers of a few MB.
MAX_HEADER_BYTES = 100_000_000
# JSON values in one header, counted from its structural bytes (`{ [ : ,`) before it is parsed, so the
# parsed objects stay bounded in memory whatever the 100 MB allow: a real tensor entry holds about 11
# (a 1T-parameter shard's few thousand tensors some 10^5); 2^22 is some 380,000 tensors in one file.
MAX_HEADER_ITEMS = 2**22
# Bits per element of each safetensors dtype (safetensors Dtype, including the sub-byte floats).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6,
    "F6_E3M2": 6, "C64": 64,
}


class SafetensorsError(VramcalcError):
    pass


class TensorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    dtype: str
    shape: tuple[int, ...]
    nbytes: int


class SafetensorsHeader(BaseModel):
    model_config = ConfigDict(frozen=True)

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    header_bytes: int  # bytes read: 8 + the JSON

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors.values():
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return out

    def bytes_by_group(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, t in self.tensors.items():
            g = group_of(name)
            out[g] = out.get(g, 0) + t.nbytes
        return out


def parse_header(raw: bytes, where: str, file_size: int | None = None) -> SafetensorsHeader:
    """`raw` is the JSON (without the 8-byte length). `file_size` bounds the data offsets."""
    items = sum(raw.count(c) for c in (b"{", b"[", b":", b","))
    if items > MAX_HEADER_ITEMS:
        raise SafetensorsError(f"{where}: safetensors header of some {items:,} JSON values, over the limit of "
                               f"{MAX_HEADER_ITEMS:,} per header: not a plausible checkpoint")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{where}: safetensors header is not valid JSON ({e})") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits, 4,300)
        raise SafetensorsError(f"{where}: safetensors header holds a number too long to be a shape or offset") from None
    except RecursionError:
        raise SafetensorsError(f"{where}: safetensors header nested too deeply") from None
    if not isinstance(obj, dict):
        raise SafetensorsError(f"{where}: safetensors header is not a JSON object")
    data_size = None if file_size is None else file_size - 8 - len(raw)
    metadata: dict[str, str] = {}
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int, str]] = []
    for name, entry in obj.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise SafetensorsError(f"{where}: __metadata__ must map strings to strings")
            metadata = entry
            continue
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{where}: tensor {name!r} entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise SafetensorsError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > 8 or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**48 for d in shape):
            raise SafetensorsError(f"{where}: tensor {name!r} has an invalid shape {str(shape)[:80]}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets) and offsets[0] <= offsets[1]):
            raise SafetensorsError(f"{where}: tensor {name!r} has invalid data_offsets {str(offsets)[:80]}")
        bits = prod(shape) * DTYPE_BITS[dtype]
        nbytes = offsets[1] - offsets[0]
        if bits % 8 or nbytes != bits // 8:
            raise SafetensorsError(f"{where}: tensor {name!r}: data_offsets span {nbytes} bytes but "
                                   f"{dtype}{shape} needs {bits / 8:g}")
        if data_size is not None and offsets[1] > data_size:
            raise SafetensorsError(f"{where}: tensor {name!r} ends at byte {offsets[1]} past the data region "
                                   f"({data_size} bytes): the file is truncated or corrupt")
        tensors[name] = TensorInfo(dtype=dtype, shape=tuple(shape), nbytes=nbytes)
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    for (_, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{where}: tensors {n0!r} and {n1!r} overlap")
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_bytes=8 + len(raw))


def read_header_from(stream: BinaryIO, where: str, file_size: int | None = None) -> SafetensorsHeader:
    head = stream.read(8)
    if len(head) < 8:
        raise SafetensorsError(f"{where}: too short for a safetensors file ({len(head)} bytes)")
    (n,) = struct.unpack("<Q", head)
    limit = MAX_HEADER_BYTES if file_size is None else min(MAX_HEADER_BYTES, file_size - 8)
    if n > limit:
        raise SafetensorsError(f"{where}: header length {n} exceeds "
                               + ("the file" if file_size is not None and n > file_size - 8 else
                                  f"the {MAX_HEADER_BYTES:,}-byte limit"))
    raw = stream.read(n)
    if len(raw) < n:
        raise SafetensorsError(f"{where}: header cut short ({len(raw)} of {n} bytes)")
    return parse_header(raw, where, file_size)


def read_file(path: str | Path) -> SafetensorsHeader:
    path = Path(path)
    size = regular_file_size(path, SafetensorsError)  # a FIFO named like a shard is refused, not opened
    try:
        with path.open("rb") as f:
            return read_header_from(f, str(path), size)
    except OSError as e:
        raise SafetensorsError(f"{path}: cannot read ({e.strerror or e})") from None


SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<i>\d+)-of-(?P<n>\d+)\.safetensors$")


def _missing_shards(folder: Path, names: list[str], where: str) -> None:
    """Refuse a set of shards with holes: every `stem-0000i-of-0000N.safetensors` needs all N."""
    sets: dict[tuple[str, str, int], set[int]] = {}
    for name in names:
        m = SHARD_NAME.match(name)
        if m and int(m["n"]) > 0:
            sets.setdefault((m["stem"], m["n"], len(m["i"])), set()).add(int(m["i"]))
    for (stem, n, width), have in sorted(sets.items()):
        total = int(n)
        if total > 100_000:
            raise SafetensorsError(f"{where}: shard names claim {total:,} shards, over the limit of 100,000")
        missing = [f"{stem}-{i:0{width}d}-of-{n}.safetensors" for i in range(1, total + 1) if i not in have]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise SafetensorsError(f"{where}: incomplete shard set: {total - len(missing)} of {total} shards of "
                                   f"{stem}-*-of-{n}.safetensors here, missing {shown}")


def shard_files(folder: Path) -> list[Path]:
    """The checkpoint's shards: those the index names, else every *.safetensors in the folder. The
    set must be complete: every file the index names, every i of a `-0000i-of-0000N` set of names;
    a set with holes is refused (its weights would be read as exact and far too small)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        obj = bounded_json.read(index)
        weight_map: Any = obj.get("weight_map") if isinstance(obj, dict) else None
        if not isinstance(weight_map, dict):
            raise SafetensorsError(f"{index}: no weight_map")
        names = sorted(set(weight_map.values()))
        if any(not isinstance(n, str) or "/" in n or n.startswith(".") for n in names):
            raise SafetensorsError(f"{index}: weight_map names files outside the folder")
        missing = [n for n in names if not os.path.lexists(folder / n)]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise SafetensorsError(f"{folder}: incomplete shard set: the index names {len(names)} shards, "
                                   f"missing {shown}")
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    _missing_shards(folder, [f.name for f in files], str(folder))
    return files


def read_folder(folder: str | Path) -> SafetensorsHeader:
    """All shards of a local checkpoint folder merged (headers only)."""
    folder = Path(folder)
    files = shard_files(folder)
    if not files:
        raise SafetensorsError(f"{folder}: no .safetensors files")
    tensors: dict[str, TensorInfo] = {}
    metadata: dict[str, str] = {}
    read = 0
    for f in files:
        h = read_file(f)
        dup = tensors.keys() & h.tensors.keys()
        if dup:
            raise SafetensorsError(f"{f}: tensor {sorted(dup)[0]!r} also appears in another shard")
        tensors.update(h.tensors)
        metadata.update(h.metadata)
        read += h.header_bytes
    return SafetensorsHeader(tensors=tensors, metadata=metadata, header_bytes=read)
