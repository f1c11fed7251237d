"""The bundled offline catalog: real config.json copies in data/models/, one file per model,
with their source, completeness (`partial`) and published parameter figures."""

from __future__ import annotations

import difflib
import math
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..data_files import load as load_data
from ..data_models import CatalogFile, CatalogIndex, GgufRepos
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
    base_model: str | None = None  # a quantized release: the catalog model it quantizes
    gguf_repos: tuple[str, ...] = ()  # GGUF releases of this model with their file lists (data/gguf_repos.json)


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


@lru_cache(maxsize=1)
def _index() -> CatalogIndex:
    return load_data("models_index.json", CatalogIndex)


@lru_cache(maxsize=1)
def _repos() -> dict[str, str]:
    """repo_id -> its file under data/models, from the index; no model file is read."""
    return {m.repo_id: m.file for m in _index().models}


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
    for m in _index().models:  # the entry's own aliases (the names people type), before derived ones
        for alias in m.aliases:
            table.setdefault(_norm(alias), m.repo_id)
    for short, repo in names.items():
        for suffix in _SUFFIXES:
            if short.endswith(suffix) and short[: -len(suffix)] not in names:
                table.setdefault(short[: -len(suffix)], repo)
    return table


def _compact(name: str) -> str:
    """A name without its separators: `gemma4-31b`, `gemma-4-31b` and `gemma_4_31b` are one."""
    return re.sub(r"[^a-z0-9.]", "", _norm(name))


@lru_cache(maxsize=1)
def _compact_aliases() -> dict[str, str | None]:
    """compact alias -> repo_id, or None where two repos share the compact spelling."""
    table: dict[str, str | None] = {}
    for alias, repo in _aliases().items():
        key = _compact(alias.split("/")[-1])
        table[key] = repo if table.get(key, repo) == repo else None
    return table


def gguf_repos() -> GgufRepos:
    """GGUF releases of catalog models with their file lists and sizes (data/gguf_repos.json); read only when
    asked for, never by a check of one model."""
    return load_data("gguf_repos.json", GgufRepos)


def entries() -> list[CatalogEntry]:
    ggufs: dict[str, list[str]] = {}
    for repo, g in gguf_repos().repos.items():
        ggufs.setdefault(g.base_model, []).append(repo)
    by_repo: dict[str, list[str]] = {}
    for alias, repo in _aliases().items():
        if "/" not in alias:
            by_repo.setdefault(repo, []).append(alias)
    return [
        CatalogEntry(repo_id=r, aliases=tuple(sorted(by_repo.get(r, []), key=len)), partial=d.partial,
                     source=d.source, notes=d.notes, base_model=d.base_model, gguf_repos=tuple(ggufs.get(r, [])),
                     published_params=d.published_params.model_dump(exclude_unset=True) if d.published_params else None)
        for r, d in ((r, _entry(r)) for r in _repos())
    ]


def resolve(name: str) -> str | None:
    repo = _aliases().get(_norm(name))
    if repo is None and "/" not in name:
        repo = _compact_aliases().get(_compact(name))
    return repo


_SIZE = re.compile(r"(?<![a-z0-9.])(?:a)?(\d+(?:\.\d+)?)([bmk])(?![a-z])")


def _sizes(name: str) -> set[str]:
    """Size tokens of a model name: `31b`, `a3b` (active), `135m`, `1.5b`."""
    return {m.group(0) for m in _SIZE.finditer(_norm(name).replace("-", " ").replace("_", " "))}


def _billions(name: str) -> float | None:
    """The total size a name states, in billions (`31b` -> 31, `135m` -> 0.135); not an active size."""
    for token in sorted(_sizes(name)):
        if not token.startswith("a"):
            scale = {"b": 1.0, "m": 1e-3, "k": 1e-6}[token[-1]]
            return float(token[:-1]) * scale
    return None


def _family(name: str) -> tuple[str, str]:
    """The family and generation a name starts with: ('gemma', '4') for gemma-4-31b-it,
    ('qwen', '3.5') for Qwen3.5-35B-A3B, ('llama', '3.3') for llama-3.3-70b."""
    m = re.match(r"([a-z]+)[-_ ]?(\d+(?:\.\d+)?)?", _norm(name).split("/")[-1])
    return (m.group(1), m.group(2) or "") if m else ("", "")


def _same_family(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """One family: the generation equal, the name equal up to a typo (`gema` is `gemma`)."""
    return bool(a[0]) and a[1] == b[1] and difflib.SequenceMatcher(None, a[0], b[0]).ratio() >= 0.75


_MAX_SUGGESTED_NAME = 200


def suggestions(name: str, n: int = 3) -> list[str]:
    """Catalog names close to `name`: the same family and size first (a misspelt `gemma-4-31b`
    suggests Gemma 4 31B, never gemma-3-1b), then the same family or the same size, and names
    that share neither only when nothing shares both. One name per model."""
    want = _norm(name)
    if len(want) > _MAX_SUGGESTED_NAME:  # no model name is this long; the comparison would be quadratic
        return []
    sizes, family, size = _sizes(want), _family(want), _billions(want)
    scored = []
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(want)  # difflib caches the details of seq2
    for alias, repo in _aliases().items():
        if "/" in alias:
            continue
        matcher.set_seq1(alias)
        ratio = matcher.ratio()
        same_family = _same_family(family, _family(alias))
        same_size = bool(sizes) and sizes <= _sizes(alias)
        tier = 2 if same_family and same_size else 1 if same_family or same_size else 0
        other = _billions(alias)
        # within a family, the nearest size first (gemma-4-32b: 31B before E2B)
        nearness = -abs(math.log(size / other)) if size and other else -math.inf
        if ratio >= 0.5 or tier == 2:
            scored.append((tier, same_family, nearness, ratio, -len(alias), alias, repo))
    scored.sort(reverse=True)
    if scored and scored[0][0] == 2:
        scored = [s for s in scored if s[0] > 0]
    out: list[str] = []
    seen: set[str] = set()
    for *_, alias, repo in scored:
        if repo not in seen:
            seen.add(repo)
            out.append(alias)
        if len(out) == n:
            break
    return out


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
