"""The GPU buffers of an RL weight update (--weight-transfer-config; data/vllm_features.json json_flags.weight_transfer
names each figure's source, vLLM 0.34.0): the engine vllm/v1/worker/gpu_worker.py load_model builds after the weights
load holds nothing at start-up, so each update's receive buffers come out of what the KV cache leaves, at the sizes
the trainer's init info gives (its defaults here). Checked against vLLM's own defaults read on CPU
(tests/data/vllm_weight_transfer_oracle_v0.34.0.json)."""

from __future__ import annotations

from dataclasses import dataclass

from ..messages import Message, warning
from ..gpus import GIB
from .features import features


@dataclass(frozen=True)
class TransferBuffers:
    """One worker's receive buffers of one weight update at the trainer's default init info."""
    backend: str
    buffer_bytes: int  # each buffer (0: the backend holds none of vLLM's own)
    num_buffers: int
    packed_buffer_bytes: int  # the packed size the init info defaults to
    what: str
    init_info: str
    source: str

    @property
    def bytes(self) -> int:
        return self.buffer_bytes * self.num_buffers


def transfer_buffers(backend: str | None) -> TransferBuffers | None:
    """The default buffers of a backend that has a default size; None for no flag or a backend that cannot be sized
    (data/vllm_features.json json_flags.weight_transfer unsized, warned about where the flag is read)."""
    b = features().json_flags.weight_transfer.buffers.get(backend or "")
    if b is None:
        return None
    return TransferBuffers(backend=backend or "", buffer_bytes=b.buffer_bytes, num_buffers=b.num_buffers,
                           packed_buffer_bytes=b.packed_buffer_bytes, what=b.what, init_info=b.init_info,
                           source=b.source_note)


def transfer_message(t: TransferBuffers, left: int, margin: int) -> Message:
    """The update's buffers against what the KV cache leaves on the tightest rank (free at start-up less every term
    the profile and the KV cache took): vllm.weight_transfer.oom where the default buffers exceed it (never a promise
    the other way: vramcalc's margin on those terms is said), else vllm.weight_transfer.buffers."""
    flag = f"--weight-transfer-config (backend {t.backend})"
    src = f"vllm/distributed/weight_transfer/ (vLLM {features().json_flags.weight_transfer.version})"
    room = (f"the KV cache leaves {max(left, 0) / GIB:.2f} GiB per GPU at the estimate, "
            f"{max(left - margin, 0) / GIB:.2f} GiB within its margin")
    change = f"the trainer's init info changes it ({t.init_info})"
    if t.bytes == 0:
        packed = t.packed_buffer_bytes
        fits = ("within what is left even at its margin" if packed <= left - margin else
                "within what is left at the estimate, not within its margin" if packed <= left else
                "more than what is left")
        return warning("vllm.weight_transfer.buffers", f"{flag}: nothing is held at start-up; each weight update "
                       f"takes {t.what}: 0 GiB of vLLM's own at the default, {packed / GIB:.2f} GiB per GPU with "
                       f"packed, {fits} ({room}); {change}, and a colocated trainer's own "
                       "memory on the GPU is not counted", source=src)
    what = (f"each weight update takes {t.what}: at least {t.num_buffers} x {t.buffer_bytes / GIB:.2f} GiB = "
            f"{t.bytes / GIB:.2f} GiB per GPU at vLLM's defaults, after start-up, outside the KV budget; {room}; "
            f"{change}")
    if t.bytes > left:
        return warning("vllm.weight_transfer.oom", f"{flag}: the KV cache still starts, but a weight update may run "
                       f"out of memory: {what}",
                       fix="a smaller --gpu-memory-utilization, or smaller buffers in the trainer's init info",
                       source=src)
    return warning("vllm.weight_transfer.buffers", f"{flag}: nothing is held at start-up; {what}; no promise that "
                   "larger buffers or the layerwise reload's temporaries fit", source=src)
