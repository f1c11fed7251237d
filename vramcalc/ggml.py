"""ggml tensor types and llama.cpp file types (data/gguf_quants.json, from gguf-py constants.py)."""

from __future__ import annotations

from functools import lru_cache
from math import prod

from pydantic import BaseModel, ConfigDict

from .data_files import load
from .data_models import GGUFQuants, LlamaFtypeRow
from .errors import NotModelledError


class GGMLType(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    id: int
    block: int  # elements per block
    block_bytes: int


def _data() -> GGUFQuants:
    return load("gguf_quants.json", GGUFQuants)


@lru_cache(maxsize=1)
def types() -> dict[str, GGMLType]:
    return {t.name: GGMLType(name=t.name, id=t.ggml_type_id, block=t.block_size_elems,
                             block_bytes=t.bytes_per_block) for t in _data().ggml_types}


@lru_cache(maxsize=1)
def ftypes() -> dict[str, LlamaFtypeRow]:
    """llama.cpp file type short name (Q4_K_M, IQ4_XS, MXFP4_MOE ...) -> its table row."""
    return {f.short_name: f for f in _data().llama_ftypes}


def kv_cache_types() -> list[str]:
    """The K and V cache types llama.cpp takes (-ctk, -ctv), as llama-server --help lists them."""
    return list(_data().kv_cache_types_allowed)


_BY_SPELLING: dict[str, GGMLType] = {}  # every spelling met (f16, F16 ...): the graph replay asks millions of times


def ggml_type(name: str) -> GGMLType:
    t = _BY_SPELLING.get(name)
    if t is not None:
        return t
    try:
        t = _BY_SPELLING[name] = types()[name.upper()]
    except KeyError:
        raise NotModelledError(f"unknown ggml type {name!r}") from None
    return t


def row_bytes(type_name: str, ne0: int) -> int:
    """Bytes of one row of ne0 elements (ggml_row_size); ne0 must be a multiple of the block."""
    t = ggml_type(type_name)
    if ne0 % t.block:
        raise NotModelledError(f"{t.name} needs rows that are a multiple of {t.block}, got {ne0}")
    return ne0 // t.block * t.block_bytes


def tensor_bytes(type_name: str, ne: tuple[int, ...]) -> int:
    """ggml_nbytes of a contiguous tensor with ggml dims ne (ne[0] is the row)."""
    return row_bytes(type_name, ne[0]) * prod(ne[1:])
