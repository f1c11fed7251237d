"""System strings: `4090`, `2x4090`, `4x3090`, `4090:2`, `4090,3090`, `2x8xH100` (nodes),
`24GiB`, `48GiB@1000GB/s`, `4090-1.5GiB` (1.5 GiB held by a desktop on each such GPU),
`m4-max(64GiB)` (a unified-memory machine's RAM size)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from .data_files import load
from .data_models import UnifiedMemory
from .errors import UnknownGPUError, one_line
from .gpus import GIB, GPU, candidates, find_gpu, gpu_row, named_memory
from .limits import MAX_GPUS

MAX_SYSTEM_CHARS = 1000  # a --gpu string longer than this is refused before it is read


class System(BaseModel):
    model_config = ConfigDict(frozen=True)

    nodes: int
    gpus: list[GPU]  # the GPUs of one node (every node alike)
    notes: list[str]

    @property
    def gpus_per_node(self) -> int:
        return len(self.gpus)

    def note_code(self, note: str) -> str:
        """The Message code of a note: the GPU's own (gpu.ambiguous_name) where the note is a GPU's."""
        return next((g.note_code for g in self.gpus if g.note == note and g.note_code), "system.note")


def _unified() -> UnifiedMemory:
    return load("unified_memory.json", UnifiedMemory)


def _unified_usable(gpu: GPU, ram_gib: float) -> tuple[int, str]:
    u = _unified()
    gid = gpu.id
    if gid.startswith("apple-"):
        a = u.apple
        frac = a.fraction_small if ram_gib <= a.threshold_gib else a.fraction_large
        return int(ram_gib * frac * GIB), f"{a.rule} ({a.source})"
    # Jetson shares one LPDDR5 pool with the OS as GB10 does: the same stated assumption
    r = u.amd_strix_halo if "ryzen-ai-max" in gid else u.nvidia_gb10 if "gb10" in gid or "jetson" in gid else None
    if r is None and (row := gpu_row(gid)) is not None and row.host_ram:
        r = u.pc_igpu
    if r is None:
        raise UnknownGPUError(f"{gpu.id} is not a unified-memory machine: a RAM size in () applies to those only")
    return int(ram_gib * r.fraction * GIB), f"{r.rule} ({r.source})"


def _trailing_count(item: str) -> str:
    """`3090x2` as `2x3090`, unless the whole text is a GPU name (a name may end in x and a digit)."""
    t = re.fullmatch(r"\s*(.+?[\d\s)])\s*[x*]\s*(\d+)\s*", item, re.I)
    lead = re.fullmatch(r"\s*\d+\s*[x*]\s*(.+?)(?::\d+)?\s*", item, re.I)  # 2x3090: the count comes first
    if not t or (lead and candidates(lead.group(1))[0]) or candidates(item)[0] or not candidates(t.group(1))[0]:
        return item
    return f"{t.group(2)}x{t.group(1)}"


def _one(item: str, notes: list[str]) -> list[GPU]:
    item = _trailing_count(item)
    m = re.fullmatch(r"\s*(?:(\d+)\s*[x*]\s*)?(.+?)(?::(\d+))?\s*", item)
    if not m:
        raise UnknownGPUError(f"cannot read GPU {item!r}")
    count = int(m.group(1) or 1) * int(m.group(3) or 1)
    if not 0 < count <= MAX_GPUS:  # before any GPU is looked up or copied
        raise UnknownGPUError(f"{_shown(item)}: {_count(count)} GPUs is not a count vramcalc plans for (at most "
                              f"{MAX_GPUS:,} GPUs in a system)")
    body = m.group(2)
    reserve = 0.0
    r = re.fullmatch(r"(.+?)\s*-\s*(\d+(?:\.\d+)?)\s*(?:GiB|G)", body, re.I)
    if r and not re.fullmatch(r"\d+(\.\d+)?\s*(gib|gb|g)", body.strip(), re.I):
        body, reserve = r.group(1), float(r.group(2))
    ram = None
    u = re.fullmatch(r"(.+?)\s*\(\s*(\d+(?:\.\d+)?)\s*(?:GiB|GB|G)\s*\)", body, re.I)
    if u:
        body, ram = u.group(1), float(u.group(2))
    bw = None
    c = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(?:GiB|GB|G)\s*@\s*(\d+(?:\.\d+)?)\s*GB/s", body, re.I)
    if c:
        body, bw = f"{c.group(1)}GiB", float(c.group(2))
    gpu = find_gpu(body)
    if ram is not None and gpu.unified_memory:  # the RAM size tells the bins of a chip apart (M4 Max 36 / 48 GB)
        try:
            gpu = find_gpu(f"{body} {ram:g}GB")
        except UnknownGPUError:
            pass
    if bw is not None:
        gpu = gpu.model_copy(update={"memory_bandwidth_gbs": bw})
    if ram is not None:
        usable, how = _unified_usable(gpu, ram)
        gpu = gpu.model_copy(update={"memory_bytes": int(ram * GIB), "usable_bytes": usable, "usable_source": how})
    elif gpu.unified_memory:
        usable, how = _unified_usable(gpu, gpu.memory_bytes / GIB)
        gpu = gpu.model_copy(update={"usable_bytes": usable, "usable_source": how})
        if gpu.note_code != "gpu.memory_assumed" and named_memory(body) is None:  # no size named or noted yet
            notes.append(f"{gpu.name}: assumed {gpu.memory_bytes / GIB:.0f} GiB of RAM; write {body}(64GiB) for "
                         "another size")
    if reserve:
        if reserve * GIB >= gpu.usable_bytes:
            raise UnknownGPUError(f"{item!r}: the reservation is larger than the GPU")
        gpu = gpu.model_copy(update={"usable_bytes": gpu.usable_bytes - int(reserve * GIB),
                                     "reserved_bytes": int(reserve * GIB),
                                     "usable_source": gpu.usable_source + f"; {reserve:g} GiB held by other processes"})
    if gpu.note:
        notes.append(gpu.note)
    return [gpu] * count


def _shown(item: str) -> str:
    return one_line(repr(item.strip()), 60)


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**12 else "over 10^12"


def parse_system(text: str) -> System:
    """A --gpu string as a system; at most MAX_GPUS GPUs in all (nodes x GPUs per node)."""
    if len(text) > MAX_SYSTEM_CHARS:
        raise UnknownGPUError(f"--gpu: {len(text):,} characters is longer than a system is written "
                              f"(at most {MAX_SYSTEM_CHARS:,})")
    text = text.strip()
    notes: list[str] = []
    nodes = 1
    n = re.fullmatch(r"(\d+)\s*x\s*(\d+)\s*x\s*(.+)", text, re.I)  # 2x8xH100: nodes x GPUs per node
    if n:
        nodes, text = int(n.group(1)), f"{n.group(2)}x{n.group(3)}"
        if not 0 < nodes <= MAX_GPUS:
            raise UnknownGPUError(f"{_count(nodes)} nodes is not a count vramcalc plans for (at most {MAX_GPUS:,} "
                                  "GPUs in a system)")
    gpus: list[GPU] = []
    for item in text.split(","):
        if item.strip():
            gpus += _one(item, notes)
        if nodes * len(gpus) > MAX_GPUS:
            raise UnknownGPUError(f"{nodes * len(gpus):,} GPUs in all is not a count vramcalc plans for (at most "
                                  f"{MAX_GPUS:,} GPUs in a system, all nodes together)")
    if not gpus:
        raise UnknownGPUError("no GPU given")
    return System(nodes=nodes, gpus=gpus, notes=notes)
