"""Where a ModelSpec comes from: the bundled catalog, a local config.json or model folder."""

from __future__ import annotations

from pathlib import Path

from ..errors import UnknownModelError
from ..spec import ModelSpec
from . import catalog
from .hf_config import read_config_file


def load_model(name: str) -> ModelSpec:
    """A catalog id or alias (`qwen3-32b`, `meta-llama/Llama-3.1-8B`), or a local config.json
    or a folder holding one."""
    path = Path(name).expanduser()
    if path.is_file() or (path.is_dir() and (path / "config.json").is_file()):
        return read_config_file(path)
    if catalog.resolve(name) is not None:
        return catalog.load(name)
    if path.is_dir():
        raise UnknownModelError(f"{name}: folder has no config.json")
    close = catalog.suggestions(name)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `vramcalc models` lists the catalog"
    raise UnknownModelError(f"unknown model {name!r}: not in the bundled catalog and not a local config{hint}")
