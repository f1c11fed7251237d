"""The formula trace of a result: each term vramcalc computed, its formula, its inputs and the
rule it follows. Engines append terms as they compute them, so `vramcalc explain` shows the same
arithmetic the verdict used, not a second copy of it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from .results import Result, Row

from .messages import Message


class TraceTerm(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    value: float
    unit: str  # bytes, tokens, blocks, x, layers
    formula: str
    inputs: dict[str, Any] = {}
    source: str = ""


def term(name: str, value: float, formula: str, unit: str = "bytes", source: str = "", **inputs: Any) -> TraceTerm:
    return TraceTerm(name=name, value=value, unit=unit, formula=formula, inputs=inputs, source=source)


class Explanation(Result):
    """`vramcalc explain --json`: the verdict and the terms behind it."""

    model_config = ConfigDict(frozen=True)

    fits: bool
    trace: list[TraceTerm]
    errors: list[Message] = []

    def table(self) -> list[Row]:
        """One row per term of the trace: its value, formula and rule."""
        return [{"name": t.name, "value": t.value, "unit": t.unit, "formula": t.formula, "source": t.source}
                for t in self.trace]
