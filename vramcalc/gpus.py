"""GPU lookup from data/gpus.json (facts with sources; see each entry's `verification`)."""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, ConfigDict

from .data_files import load
from .data_models import CrossCheck, CrossChecks, CudaTotals, GPURow, GPUTable
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
    verification: str | None = None
    note: str | None = None  # how an ambiguous name was resolved


def _table() -> list[GPURow]:
    return load("gpus.json", GPUTable).gpus


def _key(s: str) -> str:
    s = s.lower().replace("geforce", "").replace("nvidia", "")
    return re.sub(r"[^a-z0-9]", "", s)


def _totals() -> CudaTotals:
    return load("gpu_cuda_totals.json", CudaTotals)


def _usable(gpu_id: str, vendor_gib: float) -> tuple[int, str]:
    t = _totals()
    rec = t.totals.get(gpu_id)
    if rec:
        return int(rec.gib * GIB), f"CUDA-reported total ({rec.source})"
    return int(vendor_gib * t.estimate_ratio * GIB), (f"estimated: vendor capacity x {t.estimate_ratio} "
                                                         "(no CUDA-reported total recorded for this GPU)")


def crosschecks() -> dict[str, CrossCheck]:
    """gpus.json figures re-checked against public pages (data/gpu_crosschecks.json)."""
    return load("gpu_crosschecks.json", CrossChecks).checks


def _gpu(d: GPURow) -> GPU:
    usable, how = _usable(d.id, d.memory_gib)
    return GPU(id=d.id, name=d.name, memory_bytes=int(d.memory_gib * GIB), usable_bytes=usable,
               usable_source=how,
               memory_bandwidth_gbs=d.memory_bandwidth_gbs,
               tflops_16bit=d.bf16_tflops_dense or d.fp16_tflops_dense,
               nvlink=d.nvlink and d.segment == "datacenter", compute_capability=d.compute_capability,
               unified_memory=d.unified_memory, vendor=d.vendor, gfx_arch=d.gfx_arch,
               segment=d.segment,
               verification="cross_checked" if d.id in crosschecks() else d.verification)


def all_gpus() -> list[GPU]:
    return [_gpu(d) for d in _table()]


def gpu_names() -> dict[str, tuple[str, ...]]:
    """Each GPU's id -> the names it goes by: id, product name, chip (Strix Halo, GB10 ...), for `vramcalc gpus`."""
    return {d.id: (d.id, d.name, d.chip) for d in _table()}


def find_gpu(query: str) -> GPU:
    """Match `4090`, `rtx4090`, `RTX 4090`, `rtx-4090`, or a custom size such as `24GiB`/`24GB`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(gib|gb|g)\s*", query.lower())
    if m:
        gib = float(m.group(1))
        if gib <= 0:
            raise UnknownGPUError(f"GPU size must be positive: {query!r}")
        return GPU(id=f"custom-{m.group(1)}gib", name=f"custom {m.group(1)} GiB device", memory_bytes=int(gib * GIB),
                   usable_bytes=int(gib * GIB), usable_source="as given")
    q = _key(query)
    if not q:
        raise UnknownGPUError(f"empty GPU name {query!r}")
    table = _table()
    exact = [d for d in table if q in (_key(d.id), _key(d.name))]
    if not exact:  # "4090" -> rtx-4090; "a100-80g" -> a100-80gb-*
        exact = [d for d in table if _key(d.id).startswith(q) or _key(d.id).endswith(q)
                 or _key(d.id).replace("rtx", "").startswith(q)]
    if not exact and len(q) >= 4:  # a name inside the product name: "strix halo", "8060s", "gb10", "spark"
        exact = [d for d in table if q in _key(d.name)]
    base = [d for d in exact if _key(d.id).replace("rtx", "") == q.replace("rtx", "")]
    if len(exact) == 1 or len(base) == 1:
        return _gpu((base or exact)[0])
    if len(exact) > 1:  # variants (h100 -> pcie, sxm, nvl): assume the one with least memory
        pick = min(exact, key=lambda d: d.memory_gib)
        note = (f"{query!r} matches {', '.join(d.id for d in exact)}; assumed {pick.id} "
                f"({pick.memory_gib} GB, the least memory); name one to be exact")
        return _gpu(pick).model_copy(update={"note": note})
    close = difflib.get_close_matches(query.lower(), [d.id for d in table], n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `vramcalc gpus` lists them"
    raise UnknownGPUError(f"unknown GPU {query!r}{hint}")


def gpu_row(gpu_id: str) -> GPURow | None:
    """The gpus.json row of a table GPU (architecture, per-format tensor rates, links); None for a custom size."""
    return next((d for d in _table() if d.id == gpu_id), None)
