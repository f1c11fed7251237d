"""The one loader of the bundled data files: read once, validated against its model
(vramcalc.data_models), refused with the file and the field named when it does not match."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from importlib.abc import Traversable

M = TypeVar("M", bound=BaseModel)


class DataFileError(ValueError):
    """A bundled data file that is not JSON or does not match its model."""


def parse(text: str, model: type[M], where: str) -> M:
    """`text` (a data file's contents) validated as `model`; `where` names the file in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFileError(f"{where}: not valid JSON ({e})") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                             for err in e.errors()[:5])
        more = f" (and {e.error_count() - 5} more)" if e.error_count() > 5 else ""
        raise DataFileError(f"{where} does not match {model.__name__}: {problems}{more}") from None


def load_file(path: Path, model: type[M]) -> M:
    """Any file on disk validated as `model` (not memoised)."""
    return parse(path.read_text(), model, str(path))


def _path(name: str) -> Traversable:
    p = resources.files("vramcalc").joinpath("data")
    for part in name.split("/"):
        p = p.joinpath(part)
    return p


@lru_cache(maxsize=None)
def _text(name: str) -> str:
    return _path(name).read_text()


@lru_cache(maxsize=None)
def load(name: str, model: type[M]) -> M:
    """vramcalc/data/`name` validated as `model`, read once."""
    return parse(_text(name), model, f"vramcalc/data/{name}")


@lru_cache(maxsize=None)
def raw(name: str, model: type[BaseModel]) -> dict[str, Any]:
    """vramcalc/data/`name` as the JSON object it is, once it has validated as `model`: for the
    call sites that still index it by key."""
    load(name, model)
    data: dict[str, Any] = json.loads(_text(name))
    return data


def names(folder: str) -> list[str]:
    """The JSON files in vramcalc/data/`folder`, by name, without reading them."""
    return sorted(f.name for f in _path(folder).iterdir() if f.name.endswith(".json"))
