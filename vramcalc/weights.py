"""Weight bytes of a model: every saved tensor (parameters and persistent buffers) at a dtype.

Quantized formats replace the per-tensor byte count; until they land, a quantized checkpoint is
counted at its torch_dtype (an overestimate, and check() says so).
"""

from __future__ import annotations

from math import prod

from pydantic import BaseModel, ConfigDict

from .kv import dtype_bytes
from .params import GROUPS, inventory
from .spec import ModelSpec


class WeightBytes(BaseModel):
    model_config = ConfigDict(frozen=True)

    dtype: str
    total: int
    by_group: dict[str, int]


def weight_bytes(spec: ModelSpec, dtype: str | None = None) -> WeightBytes:
    """Bytes of every tensor the checkpoint holds, all at `dtype` (default: the model's)."""
    dtype = dtype or spec.dtype
    size = dtype_bytes(dtype)
    by_group = dict.fromkeys(GROUPS, 0)
    for t in inventory(spec):
        by_group[t.group] += prod(t.shape) * size
    return WeightBytes(dtype=dtype, total=sum(by_group.values()), by_group={g: n for g, n in by_group.items() if n})
