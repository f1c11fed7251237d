"""--enable-return-routed-experts and --aux-output-config: the routed-experts auxiliary output of vLLM 0.33.0
(data/vllm_features.json aux_output names each rule's source).

    device, every rank, after the KV cache (outside the budget):
        int32 x max_num_batched_tokens x num_hidden_layers x experts_per_token      (RoutedExpertsCapturer)
    host, the first TP rank of each engine:
        store  = (max_bytes // object) x object, object = hash_block x layers x top-k x (1 byte; 2 above 256 experts)
                 max_bytes default = num_blocks x hashes_per_kv_block x object          (BlockObjectStore)
        buffer = (batches x (cdiv(max_num_batched_tokens, hash_block) + max_num_seqs) + max_num_seqs) x object
                                                                                        (RoutedExpertsBuffer)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import InputError
from ..messages import Message, error
from ..spec import ModelSpec
from .features import config_object, features

FIELDS = ("enable_return_routed_experts", "max_bytes")  # vllm/config/aux_output.py AuxOutputConfig


def parse_aux_output_config(v: Any) -> dict[str, Any]:
    """--aux-output-config: one JSON object of AuxOutputConfig's fields (its dotted keys arrive merged as one)."""
    v = config_object("--aux-output-config", v, "AuxOutputConfig", FIELDS, "vllm/config/aux_output.py")
    for k, x in v.items():
        if k == "enable_return_routed_experts" and not isinstance(x, bool):
            raise InputError(f"argument --aux-output-config: enable_return_routed_experts takes true or false, "
                             f"got {x!r}")
        if k == "max_bytes" and x is not None and (not isinstance(x, int) or isinstance(x, bool) or x <= 0):
            raise InputError(f"argument --aux-output-config: max_bytes is an integer above 0 (or null), got {x!r}")
    return dict(v)


def enabled(routed: bool, config: dict[str, Any] | None) -> bool:
    """AuxOutputConfig.enabled: the flag, or the config's own key (vllm/engine/arg_utils.py sets the key from the
    flag)."""
    return routed or bool((config or {}).get("enable_return_routed_experts"))


def refusal(spec: ModelSpec, *, pooling: bool, prefix_caching: bool, pp: int, dcp: int,
            kv_transfer: dict[str, Any] | None = None) -> Message | None:
    """VllmConfig._verify_aux_output_compatibility's first refusal, in its words."""
    a = features().aux_output
    r = a.refusals
    src = "vllm/config/vllm.py VllmConfig._verify_aux_output_compatibility (0.33.0)"
    for key, bad, fix in (("runner", pooling, "drop --enable-return-routed-experts (a generate runner only)"),
                          ("moe", not spec.is_moe, "drop --enable-return-routed-experts (MoE models only)"),
                          ("prefix_caching", not prefix_caching, "--enable-prefix-caching"),
                          ("pp", pp > 1, "--tensor-parallel-size instead of --pipeline-parallel-size"),
                          ("cp", dcp > 1, "--decode-context-parallel-size 1")):
        if bad:
            return error("vllm.aux_output.refused", f"ValueError: {r[key]} [{src}]", fix=fix, source=src)
    if kv_transfer:  # KVTransferConfig.has_connector: the connector itself or one of MultiConnector's children
        named = {kv_transfer.get("kv_connector")} | {c.get("kv_connector") for c in (
            (kv_transfer.get("kv_connector_extra_config") or {}).get("connectors") or []) if isinstance(c, dict)}
        for name in a.pd_connectors:
            if name in named:
                return error("vllm.aux_output.refused", f"ValueError: {r['connector'].format(name=name)} [{src}]",
                             fix="drop --enable-return-routed-experts on a disaggregated-prefill instance", source=src)
    return None


def _shape(spec: ModelSpec) -> tuple[int, int, int]:
    """(layers, experts, experts per token) as the capturer reads them (ModelConfig.get_total_num_hidden_layers,
    get_num_experts, get_num_experts_per_tok)."""
    moe = [la.mlp for la in spec.layers if la.mlp.kind == "moe"]
    return spec.num_layers, max(m.num_experts for m in moe), max(m.experts_per_token for m in moe)


def device_bytes(spec: ModelSpec, max_num_batched_tokens: int) -> int:
    """RoutedExpertsCapturer.device_buffer on each rank."""
    layers, _, topk = _shape(spec)
    return max_num_batched_tokens * layers * topk * features().aux_output.device_itemsize


class HostBytes(BaseModel):
    model_config = ConfigDict(frozen=True)

    store: int  # BlockObjectStore's arena
    buffer: int  # RoutedExpertsBuffer's rows
    object: int  # one block's routed experts


def host_bytes(spec: ModelSpec, *, num_blocks: int, block_size: int, max_num_batched_tokens: int,
               max_num_seqs: int, batches: int, max_bytes: int | None) -> HostBytes:
    """The host memory of the first TP rank: one KV cache group of `block_size` tokens a block (the scheduler's and
    the hash block size, one hash per KV block; vllm/v1/core/kv_cache_utils.py resolve_kv_cache_block_sizes)."""
    a = features().aux_output
    layers, experts, topk = _shape(spec)
    obj = block_size * layers * topk * (1 if experts <= a.uint8_max_experts else 2)
    cap = max_bytes if max_bytes is not None else num_blocks * obj
    blocks = batches * (-(-max_num_batched_tokens // block_size) + max_num_seqs) + max_num_seqs
    return HostBytes(store=cap // obj * obj, buffer=blocks * obj, object=obj)
