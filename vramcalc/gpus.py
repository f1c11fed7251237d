"""GPU lookup from data/gpus.json (facts with sources; each entry's `verification`: vendor_datasheet, cross_checked
or unverified)."""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from .data_files import load
from .data_models import CrossCheck, CrossChecks, CudaTotals, GPURow, GPUTable, NotPlanned
from .errors import UnknownGPUError

GIB = 1024**3


class GPU(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    memory_bytes: int  # vendor capacity
    usable_bytes: int = 0  # total memory as CUDA reports it (recorded, or estimated low)
    usable_source: str = ""
    reserved_bytes: int = 0  # held by other processes (a desktop): already taken off usable_bytes
    memory_bandwidth_gbs: float | None = None
    tflops_16bit: float | None = None  # dense bf16 with fp32 accumulate (fp16 where bf16 is not listed)
    compute_capability: str | None = None
    nvlink: bool = False  # datacenter parts with NVLink/NVSwitch; consumer bridges are not assumed
    unified_memory: bool = False
    vendor: str | None = None  # nvidia, amd, apple, intel: picks the engines' backend
    segment: str | None = None  # consumer, workstation, datacenter (GeForce cards have no GPU P2P)
    gfx_arch: str | None = None  # AMD: the LLVM target (gfx1100, gfx1151 ...)
    compute_units: int | None = None  # AMD: the vendor's compute-unit count (data/gpus.json)
    verification: str | None = None
    note: str | None = None  # how an ambiguous name was resolved
    note_code: str | None = None  # the Message code of the note


def _table() -> list[GPURow]:
    return load("gpus.json", GPUTable).gpus


def _not_planned(query: str) -> NotPlanned | None:
    """The not-planned device a name names (data/gpus.json `not_planned`), by its key or the key without what is in
    parentheses."""
    keys = {_parse_name(query).key, _parse_name(re.sub(r"\(.*?\)", " ", query)).key} - {""}
    for d in load("gpus.json", GPUTable).not_planned:
        if keys & set(d.keys) or any(k.startswith(p) for k in keys for p in d.prefixes):
            return d
    return None


def _totals() -> CudaTotals:
    return load("gpu_cuda_totals.json", CudaTotals)


def estimate_ratio(d: GPURow) -> tuple[float, str]:
    """CUDA total / vendor capacity for a GPU with no logged total: the first rule of data/gpu_cuda_totals.json that
    matches its segment and memory type, else the default ratio."""
    t = _totals()
    for r in t.estimate_rules:
        if d.memory_type.upper().startswith(r.memory_prefix) and (not r.segments or d.segment in r.segments):
            return r.ratio, r.why
    return t.estimate_ratio, "the smallest logged ratio of cards without inline ECC"


def _usable(d: GPURow) -> tuple[int, str]:
    rec = _totals().totals.get(d.id)
    if rec:
        return int(rec.gib * GIB), f"CUDA-reported total ({rec.source})"
    ratio, why = estimate_ratio(d)
    return int(d.memory_gib * ratio * GIB), (f"estimated: vendor capacity x {ratio} (no CUDA-reported total recorded "
                                              f"for this GPU; {why})")


def crosschecks() -> dict[str, CrossCheck]:
    """gpus.json figures as public pages state them, by GPU id (data/gpu_crosschecks.json)."""
    return load("gpu_crosschecks.json", CrossChecks).checks


def _gpu(d: GPURow, memory_gib: float | None = None) -> GPU:
    """The entry as a GPU; memory_gib: the memory configuration named (one of memory_options_gib)."""
    if memory_gib is not None and (d.host_ram or (d.memory_options_gib and memory_gib in d.memory_options_gib)):
        d = d.model_copy(update={"memory_gib": memory_gib})
    usable, how = _usable(d)
    return GPU(id=d.id, name=d.name, memory_bytes=int(d.memory_gib * GIB), usable_bytes=usable,
               usable_source=how,
               memory_bandwidth_gbs=d.memory_bandwidth_gbs,
               tflops_16bit=d.bf16_tflops_dense or d.fp16_tflops_dense,
               nvlink=d.nvlink and d.segment == "datacenter", compute_capability=d.compute_capability,
               unified_memory=d.unified_memory, vendor=d.vendor, gfx_arch=d.gfx_arch,
               compute_units=d.compute_units,
               segment=d.segment,
               verification=d.verification,
               note=_unverified_note(d), note_code="gpu.unverified" if d.verification == "unverified" else None)


def _unverified_note(d: GPURow) -> str | None:
    """What a user is told about an entry whose figures no second public page has confirmed yet."""
    if d.verification != "unverified":
        return None
    return (f"{d.name}: the table's figures for it (memory, bandwidth, compute) are from {d.sources[0]} and not yet "
            "cross-checked against a second public page")


def all_gpus() -> list[GPU]:
    return [_gpu(d) for d in _table()]


def gpu_names() -> dict[str, tuple[str, ...]]:
    """Each GPU's id -> the names it goes by: id, product name, chip and aliases, for `vramcalc gpus`."""
    return {d.id: (d.id, d.name, d.chip, *d.aliases) for d in _table()}


# Words that name the vendor or the brand line, not the product: dropped before names are compared.
_BRAND = re.compile(r"\b(nvidia|geforce|tesla|quadro|amd|radeon|instinct|intel|apple|tenstorrent|rtx|gtx|graphics|gpu|igpu)\b")
_LEADING_BRAND = re.compile(r"^(?:nvidia|geforce|tesla|quadro|amd|radeon|instinct|intel|apple|tenstorrent|rtx|gtx)+")  # glued: GeForceRTX3070
_CPU_CORES = re.compile(r"\b\d+[\s-]*core[\s-]*cpu\b")
_GPU_CORES = re.compile(r"\b(\d+)[\s-]*core(?:[\s-]*gpu)?\b|\b(\d+)c[\s-]*gpu\b")
_MEMORY = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)[\s-]*(?:gib|gb|g)\b")
# What may follow a family name and still be the same product: form factor and packaging, never a
# product tier (ti, super, max, pro, xt ...), so `h100` is a family of three, `4070 ti` not the SUPER.
_FORM = re.compile(r"(sxm\d?|pcie|nvl|hgx)+")


class _Name(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str  # brand words, memory and core counts removed; letters and digits only
    memory_gib: float | None = None
    gpu_cores: int | None = None


# What a log prints before the device's name: llama.cpp's `Device 0:` (CUDA) and `ggml_vulkan: 0 =` lines.
_DEVICE_LINE = re.compile(r"^\s*(?:device\s*\d+\s*:|ggml_\w+\s*:\s*\d+\s*=)\s*", re.IGNORECASE)


@lru_cache(maxsize=4096)  # a pure function of the text; lookups compare every entry's names
def _parse_name(text: str) -> _Name:
    s = _DEVICE_LINE.sub("", text).lower().replace("+", "plus").replace("(r)", " ").replace("(tm)", " ")
    s = re.sub(r"\b(mobile|notebook|laptop\s*gpu)\b", "laptop", s)
    s = _CPU_CORES.sub(" ", s)
    cores = [int(a or b) for a, b in _GPU_CORES.findall(s)]
    s = _GPU_CORES.sub(" ", s)
    mem = [float(m) for m in _MEMORY.findall(s)]
    s = _MEMORY.sub(" ", s)
    s = _BRAND.sub(" ", s)
    key = _LEADING_BRAND.sub("", re.sub(r"[^a-z0-9]", "", s)).replace("graphics", "")  # glued: UHDGraphics630
    key = re.sub(r"(mobile|notebook)", "laptop", re.sub(r"(?<=laptop)gpu$", "", key))  # glued: 4090LaptopGPU
    return _Name(key=key, memory_gib=mem[0] if len(mem) == 1 else None,
                 gpu_cores=cores[0] if len(cores) == 1 else None)


def _keys(d: GPURow) -> set[str]:
    names = [d.id, re.sub(r"\(.*?\)", " ", d.name), *d.aliases]
    return {k for k in (_parse_name(n).key for n in names) if k}


def _memory_fits(d: GPURow, gib: float | None) -> bool:
    if gib is None or d.host_ram:
        return True
    if d.memory_options_gib:
        return gib in d.memory_options_gib
    return abs(d.memory_gib - gib) < 0.5


def _cores_fit(d: GPURow, cores: int | None) -> bool:
    return cores is None or d.gpu_cores is None or d.gpu_cores == cores


def _model_number(key: str) -> str:
    m = re.search(r"[a-z]*\d+", key)  # h100 of h100pcie, rx7900 of rx7900xtx
    return m.group(0) if m else key


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def _suggestions(q: _Name, table: list[GPURow]) -> list[str]:
    """Closest entries by edit distance on the model number first, then on the whole name."""
    qn = _model_number(q.key)
    scored = sorted((min((_distance(qn, _model_number(k)), _distance(q.key, k)) for k in _keys(d)), d.id)
                    for d in table)
    return [gid for (dn, _), gid in scored[:3] if dn <= max(2, len(qn) // 2)]


def _match(q: _Name, table: list[GPURow]) -> tuple[list[str], str]:
    for how, match in (("exact", lambda k: k == q.key),
                       ("family", lambda k: k.startswith(q.key) and _FORM.fullmatch(k[len(q.key):]) is not None)):
        found = [d.id for d in table if any(match(k) for k in _keys(d))
                 and _memory_fits(d, q.memory_gib) and _cores_fit(d, q.gpu_cores)]
        if found:
            return found, how
    return [], "none"


def candidates(query: str) -> tuple[list[str], str]:
    """The entries a GPU name names, and how: "id" (an entry's id), "exact" (its own name), "family" (a name
    shared by form-factor variants, such as h100 or a100), or "none". Never a neighbouring product.
    A name as tools print it is read too: `Apple M1 Max (32-core GPU, 64GB)`, `RTX 5090 (31.4 GiB reported)`,
    `Ryzen AI Max+ 395 / Radeon 8060S` (two names of one product)."""
    table = _table()
    query = _DEVICE_LINE.sub("", query)
    plain = query.strip().lower()
    if any(d.id == plain for d in table):
        return [plain], "id"
    q = _parse_name(query)
    if not q.key:
        return [], "none"
    found = _match(q, table)
    if found[0]:
        return found
    bare = re.sub(r"\(.*?\)", " ", query)
    if bare != query:  # what is in parentheses describes the card: its core count and memory, or nothing
        b = _parse_name(bare)
        for attempt in (b.model_copy(update={"gpu_cores": b.gpu_cores or q.gpu_cores}), b):
            if attempt.key and (found := _match(attempt, table))[0]:
                return found
    # two names of one product (`Ryzen AI Max+ 395 / Radeon 8060S`), or the product named in parentheses
    # (`Ryzen AI Max (Radeon 8060S iGPU, Framework Desktop)`): every part that names an entry names the same
    parts = [p for p in bare.split("/") if p.strip()] + [p for inner in re.findall(r"\((.*?)\)", query)
                                                          for p in inner.split(",") if p.strip()]
    if len(parts) > 1:
        each = [_match(_parse_name(p), table) for p in parts]
        ids = {tuple(ids) for ids, _ in each if ids}
        if len(ids) == 1:
            return list(ids.pop()), "exact"
    return [], "none"


def find_gpu(query: str) -> GPU:
    """A GPU by the name of its product, in any case and spelling (`4090`, `RTX 4090`, `NVIDIA A100-PCIE-40GB`,
    `Apple M3 Max (40-core GPU, 64GB)`), or a custom size such as `24GiB`/`24GB`. A name shared by several
    entries (`h100`, `m4 max`) is answered for the one with the least memory, with a coded note; a name of
    no entry is refused with the closest model numbers."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|g)\s*", query.lower())
    if m:
        gib = float(m.group(1))
        if gib <= 0:
            raise UnknownGPUError(f"GPU size must be positive: {query!r}")
        return GPU(id=f"custom-{m.group(1)}gib", name=f"custom {m.group(1)} GiB device", memory_bytes=int(gib * GIB),
                   usable_bytes=int(gib * GIB), usable_source="as given")
    q = _parse_name(query)
    if not q.key:
        raise UnknownGPUError(f"empty GPU name {query!r}")
    table = _table()
    ids, how = candidates(query)
    rows = [d for d in table if d.id in ids]
    named = named_memory(query)
    if len(rows) == 1:
        return _with_memory(rows[0], named, query, how)
    if rows:
        pick = min(rows, key=lambda d: (d.memory_gib if not d.memory_options_gib else min(d.memory_options_gib),
                                        d.memory_bandwidth_gbs))
        least = named if named is not None else (min(pick.memory_options_gib) if pick.memory_options_gib else None)
        note = (f"{query!r} names {len(rows)} GPUs ({', '.join(d.id for d in rows)}); assumed {pick.id}, the one "
                "with the least memory; name one to be exact")
        if pick.verification == "unverified":
            note += "; its figures are not yet cross-checked against a second public page"
        return _gpu(pick, least).model_copy(update={"note": note, "note_code": "gpu.ambiguous_name"})
    refused = _not_planned(query)
    if refused:
        raise UnknownGPUError(f"{query!r} ({refused.device}) has no entry: {refused.why}", code="gpu.not_planned_device")
    close = _suggestions(q, table)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `vramcalc gpus` lists them"
    raise UnknownGPUError(f"unknown GPU {query!r}{hint}", code="gpu.unknown")


def named_memory(query: str) -> float | None:
    """The memory size a name gives (`M4 Max 64GB`, `Apple M1 (7-core GPU, 8GB)`), if exactly one."""
    for text in (query, *re.findall(r"\((.*?)\)", query)):
        gib = _parse_name(text).memory_gib
        if gib is not None:
            return gib
    return None


def _with_memory(d: GPURow, named: float | None, query: str, how: str) -> GPU:
    """An entry sold in several memory configurations (memory_options_gib) answers for the one named; a name
    without a size (other than the entry's id) is answered for the least, with a coded note."""
    options = d.memory_options_gib or []
    if named is not None and (named in options or d.host_ram):
        return _gpu(d, named)
    if d.host_ram and how != "id":
        note = (f"{query!r} shares the host's RAM: assumed {d.memory_gib:g} GB of it; give the host's RAM to be "
                f"exact (e.g. `{d.name} 32GB`)")
        if d.verification == "unverified":
            note += "; its figures are not yet cross-checked against a second public page"
        return _gpu(d).model_copy(update={"note": note, "note_code": "gpu.memory_assumed"})
    if len(options) < 2 or how == "id":
        return _gpu(d)
    least = min(options)
    note = (f"{query!r} is sold with {', '.join(f'{o:g}' for o in sorted(options))} GB; assumed {least:g} GB, the "
            f"least; name the size to be exact (e.g. `{d.name} {max(options):g}GB`)")
    if d.verification == "unverified":
        note += "; its figures are not yet cross-checked against a second public page"
    return _gpu(d, least).model_copy(update={"note": note, "note_code": "gpu.memory_assumed"})


def gpu_row(gpu_id: str) -> GPURow | None:
    """The gpus.json row of a table GPU (architecture, per-format tensor rates, links); None for a custom size."""
    return next((d for d in _table() if d.id == gpu_id), None)
