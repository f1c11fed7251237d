"""What vLLM's --enforce-eager costs a decode step: with no CUDA graph to replay, the host launches every kernel
of every layer from Python, one after the other (vLLM PR #1926 added the graphs for exactly this), so a step
takes the GPU's time plus the host's time to launch what the GPU waits for:

    eager_ms = us_per_kernel x kernels per step / 1000

The kernels a step launches are counted per layer part from vLLM's model code (data/speed.json vllm_eager
`kernels`, sources there): a Gated-DeltaNet layer (Qwen3-Next, Qwen3.5/3.6) launches more than an attention
layer, a MoE MLP more than a dense one, and TP adds one all-reduce after the attention and one after the MLP.
`us_per_kernel` is fitted on the calibration pairs (tools/calibrate_speed.py). It is the host's cost, so it moves
with the host CPU: the pairs behind it and its spread are in data/speed.json.

The sum is an upper bound: launches are asynchronous to the host, so where the GPU's own step is the longer one
(a 27B on a DGX Spark, data/speed.json vllm_eager `_source`) most of them hide behind it; that overlap is not
modelled. Published pairs at TP=4 and on a hybrid model at TP=1 (tests/data/vllm_eager_pairs.json) show no cost
per all-reduce or per Gated-DeltaNet (Triton) kernel beyond one launch each, so none is added.
"""

from __future__ import annotations

from .data_files import load
from .data_models import Speed
from .spec import LayerSpec, ModelSpec


def _counts() -> dict[str, int]:
    return load("speed.json", Speed).vllm_eager.kernels


def layer_kernels(layer: LayerSpec) -> int:
    """Kernels one decode step of one layer launches in eager mode, without TP."""
    k = _counts()
    n = k["norm"] * layer.norms
    a = layer.attention
    if a is not None:
        n += k["mla"] if a.mla is not None else k["attention"]
        if a.output_gate and a.qk_norm:  # gated attention: one kernel splits q and the gate, norms q and k and ropes
            n += k["fused_qk_norm_rope_gate"] - k["rotary"]
        else:
            n += k["qk_norm"] if a.qk_norm else 0
        n += k["output_gate"] if a.output_gate else 0
    if layer.ssm is not None:
        n += k["gated_deltanet"] if layer.ssm.kind == "gated_deltanet" else k["mamba"]
    if layer.mlp.kind == "dense":
        n += k["dense_mlp"]
    elif layer.mlp.kind == "moe":
        n += k["moe"] + (k["dense_mlp"] if layer.mlp.shared_intermediate_size else 0)
        n += k["dense_mlp"] if layer.mlp.intermediate_size else 0  # a dense branch beside the experts (Gemma 4)
    return n


def step_kernels(spec: ModelSpec) -> int:
    """Kernels of one decode step over all layers, without TP (the all-reduces are added per TP degree)."""
    return sum(layer_kernels(layer) for layer in spec.layers)


def eager_ms(kernels: int, num_layers: float, tp: int, layer_share: float = 1.0) -> float:
    """Host milliseconds a step of `kernels` (step_kernels) spends launching them, on the `layer_share` of the
    layers one pipeline stage holds; TP > 1 launches two all-reduces a layer as well."""
    sp = load("speed.json", Speed).vllm_eager
    launched = kernels * layer_share + (2 * _counts()["allreduce"] * num_layers * layer_share if tp > 1 else 0)
    return sp.us_per_kernel * launched * 1e-3
