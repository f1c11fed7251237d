"""The run-time encoder cache of precomputed multimodal embeddings (vLLM 0.34.0; data/vllm_features.json multimodal
mm_embeds names each rule's source): with --enable-mm-embeds, or as an EC consumer of --ec-transfer-config, and every
modality of the class at --limit-mm-per-prompt 0 (or --language-model-only), the tower is not built but the first PP
stage's runner keeps an encoder cache the profile run leaves empty, so the embeddings it holds at run time come out of
what the KV cache leaves of the GPU. Checked against vLLM's own config on CPU (tests/data/
vllm_mm_embeds_oracle_v0.34.0.json)."""

from __future__ import annotations

from dataclasses import dataclass

from ..kv import dtype_bytes
from ..spec import ModelSpec
from .features import features


@dataclass(frozen=True)
class EmbedsCache:
    """The encoder cache of one rank of the first PP stage (every TP rank holds whole embeddings)."""
    tokens: int  # the scheduler's bound: max(max_num_batched_tokens, the processor's largest item where sized)
    width: int  # elements per cached token
    itemsize: int  # bytes per element
    refusal: str | None  # the class's assertion on image embeds: nothing is held
    consumer: bool  # an EC consumer: the producer's encoder outputs, DeepStack levels packed

    @property
    def bytes(self) -> int:
        return 0 if self.refusal else self.tokens * self.width * self.itemsize


def embeds_on(opts_enable: bool, ec_role: str | None) -> bool:
    """--enable-mm-embeds, or an EC consumer (vllm/config/vllm.py VllmConfig._resolve_mm_embedding_inputs turns it on
    for ec_consumer and ec_both)."""
    return opts_enable or ec_role in ("ec_consumer", "ec_both")


def embedding_only(spec: ModelSpec, limits: dict[str, int] | None, language_model_only: bool) -> bool:
    """Every modality the class's processor supports at 0 (vllm/config/model.py _supports_multimodal_inputs;
    vllm/config/multimodal.py get_limit_per_prompt: a modality not named keeps 999, --language-model-only makes all
    0); a class not listed is not read (False)."""
    mods = features().multimodal.mm_embeds.modalities.get(spec.architecture or "")
    if spec.vision is None or mods is None:
        return False
    return language_model_only or all((limits or {}).get(m) == 0 for m in mods)


def embeds_cache(spec: ModelSpec, mnbt: int, wdtype: str | None, ec_role: str | None,
                 largest_item: int | None = None) -> EmbedsCache:
    """compute_mm_encoder_budget's cache size, at its floor max_num_batched_tokens (SchedulerConfig.encoder_cache_size):
    the processor's largest item raises it where vramcalc/vllm/mm_profile.py sizes the processor (largest_item:
    Qwen2.5-VL-3B and Qwen3.6-27B, under --mm-processor-kwargs too), else it needs the processor's files; one
    token is ModelConfig.get_inputs_embeds_size() elements (the hidden size: the catalog's configs carry none of
    word_embed_proj_dim / projection_dim / projection_size) in the model dtype (the casting classes'
    .type(self.visual.dtype)); an EC consumer's tokens are the producer's tower outputs, DeepStack levels packed
    (qwen3_vl.py Qwen3_VisionTransformer.out_hidden_size: merger_out x the patch merger and deepstack mergers)."""
    r = features().multimodal.mm_embeds
    arch = spec.architecture or ""
    consumer = ec_role in ("ec_consumer", "ec_both")
    width = spec.hidden_size
    v = spec.vision
    if consumer and arch in r.deepstack and v is not None and v.merger_out and v.mergers:
        width = v.merger_out * v.mergers
    # largest_item: where vramcalc/vllm/mm_profile.py sizes the processor's items (max_item_tokens over every
    # modality, the embedding-only ones included: vllm/multimodal/encoder_budget.py MultiModalBudget, v0.34.0)
    return EmbedsCache(tokens=max(mnbt, largest_item or 0), width=width, itemsize=dtype_bytes(wdtype or spec.dtype),
                       refusal=r.refusals.get(arch), consumer=consumer)
