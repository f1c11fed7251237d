"""What every result of a question shares: `.to_dict()`, the JSON `--json` prints, and `.table()`, rows a
notebook or a pandas DataFrame takes (no pandas needed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

Row = dict[str, Any]


class Result(BaseModel):
    # (no docstring: a subclass without its own would show this one in docs/schema)

    def to_dict(self) -> dict[str, Any]:
        """The result as `--json` prints it, as a dict."""
        return self.model_dump(mode="json")

    def table(self) -> list[Row]:
        """One row (a flat dict) per device or memory term for a check, per recommendation for a plan."""
        return [self.to_dict()]
