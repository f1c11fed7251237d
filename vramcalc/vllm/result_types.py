"""Typed parts of VLLMResult: what it says of the model and of the layout it checked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A frozen result record that also reads by key (r.layout["tp"]), as the dicts it replaces did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)


class ModelSummary(Record):
    id: str
    params_total: int
    params_active: int


class Layout(Record):
    tp: int
    pp: int
    replicas: int
    max_num_seqs: int
    max_num_batched_tokens: int
