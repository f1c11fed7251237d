"""The bundled offline catalog: real config.json copies in data/models/, one file per model,
with their source, completeness (`partial`) and published parameter figures."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..data_files import load as load_data
from ..data_files import names as data_names
from ..data_models import CatalogFile
from ..errors import UnknownModelError
from ..spec import ModelSpec
from .hf_config import spec_from_config, with_modelopt_config

_SUFFIXES = ("-instruct", "-it", "-chat")


class CatalogEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    repo_id: str
    aliases: tuple[str, ...]
    partial: bool
    source: str
    published_params: dict[str, Any] | None = None
    notes: str | None = None


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


@lru_cache(maxsize=1)
def _repos() -> dict[str, str]:
    """repo_id -> its file under data/models (org__name.json), by file name; no file is read."""
    return {f[: -len(".json")].replace("__", "/"): f for f in data_names("models")}


def _entry(repo: str) -> CatalogFile:
    """One catalog file, read and validated when first asked for."""
    return load_data(f"models/{_repos()[repo]}", CatalogFile)


@lru_cache(maxsize=1)
def _aliases() -> dict[str, str]:
    """alias -> repo_id: the repo id, its name, and the name without -Instruct/-it when no other
    catalog model claims that shorter name (the base model wins where both are bundled)."""
    table: dict[str, str] = {}
    names = {_norm(r.split("/")[-1]): r for r in _repos()}
    for repo in _repos():
        table[_norm(repo)] = repo
        table[_norm(repo.split("/")[-1])] = repo
    for short, repo in names.items():
        for suffix in _SUFFIXES:
            if short.endswith(suffix) and short[: -len(suffix)] not in names:
                table.setdefault(short[: -len(suffix)], repo)
    return table


def entries() -> list[CatalogEntry]:
    by_repo: dict[str, list[str]] = {}
    for alias, repo in _aliases().items():
        if "/" not in alias:
            by_repo.setdefault(repo, []).append(alias)
    return [
        CatalogEntry(repo_id=r, aliases=tuple(sorted(by_repo.get(r, []), key=len)), partial=d.partial,
                     source=d.source, notes=d.notes,
                     published_params=d.published_params.model_dump(exclude_unset=True) if d.published_params else None)
        for r, d in ((r, _entry(r)) for r in _repos())
    ]


def resolve(name: str) -> str | None:
    return _aliases().get(_norm(name))


def suggestions(name: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(_norm(name), list(_aliases()), n=n, cutoff=0.5)


def load(name: str) -> ModelSpec:
    repo = resolve(name)
    if repo is None:
        close = suggestions(name)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `vramcalc models` lists the catalog"
        raise UnknownModelError(f"unknown model {name!r}: not in the bundled catalog{hint}")
    d = _entry(repo)
    notes: tuple[str, ...] = ()
    cfg = config_of(repo)
    if d.architecture_from:
        notes += (f"catalog copy is partial: the fields it lacks come from {d.architecture_from.repo_id}'s "
                  "config (same architecture, data/models notes say why)",)
    elif d.partial:
        notes += ("catalog copy is partial: fields it lacks took transformers class defaults",)
    spec = spec_from_config(cfg, model_id=repo, source=f"catalog:{repo}", where=f"catalog entry {repo}")
    return spec.model_copy(update={"notes": spec.notes + notes}) if notes else spec


def config_of(repo: str) -> dict[str, Any]:
    """The entry's config as vLLM would see it: a partial copy completed from the bundled config of
    the model it names in `architecture_from` (its own keys win), and a ModelOpt
    `hf_quant_config.json` taken as the quantization_config when config.json has none."""
    d = _entry(repo)
    cfg = dict(d.config)
    if d.architecture_from:
        cfg = {**config_of(d.architecture_from.repo_id), **cfg}
    return with_modelopt_config(cfg, d.hf_quant_config)
