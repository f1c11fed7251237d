"""vLLM diffusion LLM serving (--diffusion-config; DiffusionGemma): what it changes in the memory vramcalc sizes.

Read as vLLM v0.34.0 reads it (tests/data/vllm_diffusion_oracle_v0.34.0.json is vLLM's own answer, case by case):
- DiffusionConfig (vllm/config/diffusion.py: canvas_length > 0 or unset, max_denoising_steps), built by
  EngineArgs.create_diffusion_config. A model whose config carries canvas_length is a diffusion model
  (ModelConfig.is_diffusion); DiffusionGemma (DiffusionGemmaModelForBlockDiffusionConfig.verify_and_update_config,
  vllm/model_executor/models/config.py) makes one from the config's canvas_length (256 without) when the flag is
  not given, and cuts a --max-num-seqs of SchedulerConfig.DEFAULT_MAX_NUM_SEQS (128) or more, the default included,
  to 8.
- VllmConfig.num_speculative_tokens is canvas_length without --speculative-config (vllm/config/vllm.py), so the
  decode query is 1 + canvas_length tokens (uniform_decode_query_len): the CUDA-graph capture sizes are those of a
  speculative decoder with that many tokens (engine.py cudagraph_capture_sizes). Unlike EAGLE / MTP no KV slots are
  reserved past the query (num_lookahead_tokens is 0: it reads --speculative-config only), no drafter is loaded and
  no max_num_scheduled_tokens is set; neither a canvas above --max-num-batched-tokens nor one above --max-model-len
  is refused when the config is built. The scheduler is vllm.v1.core.sched.diffusion_scheduler.DiffusionScheduler
  (DiffusionAsyncScheduler with async scheduling): no memory of its own.
- The model runner (DiffusionGemmaModelState, vllm/model_executor/models/diffusion_gemma.py) allocates, before the
  profile run, the per-request diffusion state (DiffusionGemmaRequestStates: canvases, their history and an fp32
  self-conditioning embedding of max_num_seqs x canvas_length x hidden) and a persistent inputs_embeds buffer of
  max_num_batched_tokens x hidden in the model dtype; the profile run's sampler pass is DiffusionSampler.profile_run,
  one request's canvas: canvas_length logit rows, not max_num_seqs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..kv import dtype_bytes
from ..messages import Message, warning
from ..spec import ModelSpec

SOURCE = "vllm/config/diffusion.py DiffusionConfig; vllm/model_executor/models/diffusion_gemma.py (v0.34.0)"
DIFFUSION_GEMMA = "DiffusionGemmaForBlockDiffusion"
DEFAULT_MAX_NUM_SEQS = 128  # vllm/config/scheduler.py SchedulerConfig.DEFAULT_MAX_NUM_SEQS (v0.34.0)
CAPPED_MAX_NUM_SEQS = 8  # DiffusionGemmaModelForBlockDiffusionConfig.verify_and_update_config
DEFAULT_CANVAS = 256  # ... getattr(hf_config, "canvas_length", 256)
# generation_config.json stability_threshold as google/diffusiongemma-26B-A4B-it publishes it (1); the runner keeps
# that many + 1 accepted canvases per request (DiffusionGemmaModelState.__init__)
STABILITY_THRESHOLD = 1


class DiffusionPlan(BaseModel):
    """What diffusion serving sets for one deployment."""

    model_config = ConfigDict(frozen=True)

    is_diffusion: bool  # the model's config carries canvas_length (ModelConfig.is_diffusion)
    canvas_length: int | None  # the served canvas (None: no diffusion config, or one without canvas_length)
    num_speculative_tokens: int  # VllmConfig.num_speculative_tokens from the canvas (0 with --speculative-config)
    max_num_seqs: int  # after DiffusionGemma's cut
    state_bytes: int  # the runner's persistent diffusion buffers, per rank (0 for a model that is no diffusion LLM)
    warnings: list[Message] = []


def model_is_diffusion(spec: ModelSpec) -> bool:
    """ModelConfig.is_diffusion: canvas_length set in the (top-level) HF config."""
    return (spec.config or {}).get("canvas_length") is not None


def request_state_bytes(max_num_seqs: int, canvas: int, hidden: int) -> int:
    """DiffusionGemmaRequestStates (v0.34.0 vllm/model_executor/models/diffusion_gemma.py) on one rank: int64 canvas,
    argmax canvas and seed canvas, (stability_threshold + 1) int64 accepted canvases and a bool pin mask, each
    max_num_seqs x canvas_length; the fp32 self-conditioning embeddings, max_num_seqs x canvas_length x hidden; per
    request four bool and four int32 flags and counters."""
    r, cl = max_num_seqs, canvas
    per_canvas = 3 * 8 + (STABILITY_THRESHOLD + 1) * 8 + 1
    return r * cl * per_canvas + r * cl * hidden * 4 + r * (4 * 1 + 4 * 4)


def plan_diffusion(cfg: dict[str, Any] | None, spec: ModelSpec, seqs: int, mnbt: int, speculative: bool,
                   wdtype: str | None) -> DiffusionPlan | None:
    """The diffusion settings of one deployment (None where neither the flag nor the model asks for any). `seqs`
    and `mnbt` are --max-num-seqs and --max-num-batched-tokens as resolved without diffusion."""
    is_diff = model_is_diffusion(spec)
    dg = spec.architecture == DIFFUSION_GEMMA
    if cfg is None and not dg:
        return None
    warnings: list[Message] = []
    if cfg is None:  # DiffusionGemma makes its own from the config (verify_and_update_config)
        canvas: int | None = int((spec.config or {}).get("canvas_length", DEFAULT_CANVAS))
    else:
        canvas = cfg.get("canvas_length")
        if canvas is None:
            warnings.append(warning(
                "vllm.diffusion.no_canvas", "--diffusion-config without canvas_length: vLLM keeps it unset (the "
                "model's own canvas_length is read only when the flag is absent), so VllmConfig.num_speculative_tokens "
                "is 0 and nothing is sized for a canvas; DiffusionGemma's runner is then handed no canvas length "
                "(vramcalc has not checked that it starts)", source=SOURCE,
                fix='give canvas_length, e.g. --diffusion-config \'{"canvas_length": 256}\''))
    if dg and seqs >= DEFAULT_MAX_NUM_SEQS:
        seqs = CAPPED_MAX_NUM_SEQS
    if cfg is not None and not is_diff:
        warnings.append(warning(
            "vllm.diffusion.not_a_diffusion_model", f"--diffusion-config on {spec.id}, which is no diffusion model "
            "(its config has no canvas_length): vLLM 0.34.0 builds the config anyway (the diffusion scheduler, "
            f"{canvas or 0} speculative tokens a step, sized for here), but its model runner has no diffusion "
            "state for it; vramcalc does not model how it then runs", source=SOURCE,
            fix="drop --diffusion-config"))
    if is_diff and canvas:
        steps = (cfg or {}).get("max_denoising_steps")
        warnings.append(warning(
            "vllm.diffusion.speed", f"{spec.id} denoises a canvas of {canvas} tokens a block, in up to "
            + (f"{steps}" if steps else "the generation config's max_denoising_steps") + " passes over it: "
            "vramcalc's speed estimate decodes one token a step and does not estimate this", source=SOURCE))
    k = 0 if speculative or not canvas else canvas
    state = 0
    if is_diff and dg and canvas:
        state = request_state_bytes(seqs, canvas, spec.hidden_size) + \
            mnbt * spec.hidden_size * dtype_bytes(wdtype or spec.dtype)
    return DiffusionPlan(is_diffusion=is_diff, canvas_length=canvas, num_speculative_tokens=k, max_num_seqs=seqs,
                         state_bytes=state, warnings=warnings)


def sampler_warning(plan: DiffusionPlan, vocab: int, copies: float) -> Message | None:
    """The decode step's sampler holds fp32 logits for every running request's canvas, the profile run for one
    (DiffusionSampler.profile_run): what that leaves unreserved, as a warning."""
    if not plan.is_diffusion or not plan.canvas_length or plan.max_num_seqs <= 1:
        return None
    gib = (plan.max_num_seqs - 1) * plan.canvas_length * vocab * 4 * copies / 2**30
    return warning(
        "vllm.diffusion.sampler_peak", f"a denoising step samples max_num_seqs x canvas_length = {plan.max_num_seqs} "
        f"x {plan.canvas_length} logit rows of {vocab} fp32 values, the profile run one canvas "
        f"(DiffusionSampler.profile_run): about {gib:.2f} GiB more per GPU at full concurrency that vLLM does not "
        "reserve in its budget; the model card advises --max-num-seqs 4 and --gpu-memory-utilization 0.8 on one H200",
        source="vllm/model_executor/models/diffusion_gemma.py DiffusionSampler (v0.34.0); "
               "https://recipes.vllm.ai/Google/diffusiongemma-26B-A4B-it",
        fix="a lower --max-num-seqs or --gpu-memory-utilization")
