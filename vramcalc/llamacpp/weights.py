"""Where llama.cpp puts each weight tensor (llamacpp_rules.md section 8; src/llama-model.cpp
load_tensors): -ngl counts n_layer + 1 units, the output layer first (PR #18148), then the last
ngl - 1 blocks; token_embd always stays on the CPU; a tied head loads a second copy of token_embd
on the output device; -ot/--override-tensor and --cpu-moe move matching tensors to the CPU.
On unified-memory backends (Metal) the device buffer maps the whole file: no second copy."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ..ggml import tensor_bytes
from ..gguf_mix import GGUFTensor


class ModelBuffers(BaseModel):
    model_config = ConfigDict(frozen=True)

    cpu_bytes: int  # host: token_embd, CPU layers, overridden tensors
    gpu_bytes: int  # the device buffer (with unified memory it spans the whole file)
    gpu_layers: int  # offloaded repeating blocks
    output_on_gpu: bool
    unified: bool


def gpu_start(n_layer: int, ngl: int) -> int:
    """First block index on the GPU: max(n_layer + 1 - ngl, 0) (output layer counted first)."""
    return max(n_layer + 1 - ngl, 0)


def model_buffers(tensors: list[tuple[GGUFTensor, str]], n_layer: int, ngl: int,
                  cpu_overrides: list[str] | None = None, unified: bool = False) -> ModelBuffers:
    """tensors: (tensor, ggml type) as in the file (gguf_mix.plan_gguf or a read header)."""
    start = gpu_start(n_layer, ngl)
    output_gpu = ngl >= 1
    overrides = [re.compile(p) for p in (cpu_overrides or [])]
    cpu = gpu = 0
    tied = not any(t.name == "output.weight" for t, _ in tensors)
    for t, ggml in tensors:
        size = tensor_bytes(ggml, t.ne)
        m = re.match(r"blk\.(\d+)\.", t.name)
        if t.name == "token_embd.weight":
            on_gpu = False
            if tied and output_gpu and not unified:  # the output layer's own copy of the tied matrix
                gpu += size
        elif any(p.search(t.name) for p in overrides):
            on_gpu = False
        elif m:
            on_gpu = int(m.group(1)) >= start
        else:  # output, output_norm and model-level tensors travel with the output layer
            on_gpu = output_gpu
        if on_gpu:
            gpu += size
        else:
            cpu += size
    if unified:  # Metal maps the whole file into one device buffer
        gpu = cpu + gpu
    return ModelBuffers(cpu_bytes=cpu, gpu_bytes=gpu, gpu_layers=n_layer - start, output_on_gpu=output_gpu,
                        unified=unified)
