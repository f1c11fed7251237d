"""vLLM's own --mm-processor-kwargs handling for the profiled dummy item, run on a CPU machine: the oracle for
vramcalc/vllm/mm_profile.py's dummy sizes under processor kwargs (tests/data/vllm_mm_processor_kwargs_oracle_v0.34.0.json).

    VLLM_TARGET_DEVICE=cpu /work/venvs/vllm-0.34.0/bin/python tools/vllm_mm_processor_kwargs_oracle.py \
        --out tests/data/vllm_mm_processor_kwargs_oracle_v0.34.0.json

For each model and kwargs value: a checkpoint directory holding the catalog's config.json, the checkpoint's published
preprocessor_config.json (and, for Qwen3.6, video_preprocessor_config.json; PREPROCESSORS below) and a stand-in
tokenizer (a word-level tokenizer holding the processor's special tokens: the processor needs one, this offline
machine has no checkpoint's, and the dummy sizes never read it). Then vLLM's own start-up path:
EngineArgs(mm_processor_kwargs=...).create_engine_config(), MultiModalBudget(vllm_config, MULTIMODAL_REGISTRY)
(vllm/multimodal/encoder_budget.py: the processor's get_mm_max_tokens_per_item, compute_mm_encoder_budget,
_get_max_items), get_modality_with_max_tokens, and the dummy inputs builder's get_dummy_mm_data (the image and video
the profile run encodes: vllm/model_executor/models/qwen2_vl.py Qwen2VLDummyInputsBuilder, qwen3_vl.py
Qwen3VLDummyInputsBuilder). Written per case: the dummy image's width and height, the dummy video's frames, width
and height, the tokens per item of each modality, the modality profiled, its items per batch, the encoder compute
budget and cache size; or the error vLLM raises (its type and message). CHUNKED: the same with
--disable-chunked-mm-input (compute_mm_encoder_budget's refusal); EMBEDS ("embeds" in the fixture): --enable-mm-embeds
with every modality at 0 or --language-model-only, the budget's encoder cache size beside the scheduler's floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

sys.path.insert(0, os.path.dirname(__file__))
from vllm_oracle import setup  # noqa: E402

MODELS = os.path.join(os.path.dirname(__file__), "..", "vramcalc", "data", "models")

# the checkpoints' processor configs as published (huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct preprocessor_config.json;
# huggingface.co/Qwen/Qwen3.6-27B preprocessor_config.json and video_preprocessor_config.json, the Qwen3-VL family's
# values: 16777216 / (32 x 32) = 16384 image tokens, the figure vLLM logs for this checkpoint)
PREPROCESSORS: dict[str, dict[str, Any]] = {
    "Qwen__Qwen2.5-VL-3B-Instruct": {
        "preprocessor_config.json": {
            "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"},
    },
    "Qwen__Qwen3.6-27B": {
        "preprocessor_config.json": {
            "size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16, "temporal_patch_size": 2,
            "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "processor_class": "Qwen3VLProcessor", "image_processor_type": "Qwen2VLImageProcessorFast"},
        "video_preprocessor_config.json": {
            "size": {"longest_edge": 25165824, "shortest_edge": 4096}, "patch_size": 16, "temporal_patch_size": 2,
            "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "fps": 2, "min_frames": 4,
            "max_frames": 768, "processor_class": "Qwen3VLProcessor", "video_processor_type": "Qwen3VLVideoProcessor"},
    },
}
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>", "<|vision_pad|>", "<unk>"]

KWARGS: list[dict[str, Any] | None] = [
    None,
    {"max_pixels": 1003520},
    {"max_pixels": 200704, "min_pixels": 3136},
    {"min_pixels": 401408},
    {"size": {"longest_edge": 2007040, "shortest_edge": 3136}},
    {"size": {"longest_edge": 1048576}},
    {"images_kwargs": {"max_pixels": 802816}},
    {"videos_kwargs": {"max_pixels": 1605632}},
    {"images_kwargs": {"max_pixels": 802816}, "videos_kwargs": {"max_pixels": 401408}},
    {"max_pixels": 3211264, "images_kwargs": {"max_pixels": 401408}},
    {"videos_kwargs": {"size": {"longest_edge": 6291456, "shortest_edge": 4096}}},
    {"fps": 1},
    {"num_frames": 8},
    {"videos_kwargs": {"fps": 4, "num_frames": 16}},
    {"do_resize": False},
    {"max_pixels": 50000000},
    {"max_pixels": 1000},
    {"min_pixels": 20000000},
    {"videos_kwargs": {"temporal_patch_size": 4}},
    {"size": {"shortest_edge": 3136}},
    {"max_pixels": None},
    {"max_pixels": 1003520, "size": {"longest_edge": 401408}},
    {"images_kwargs": 5},
    {"videos_kwargs": [1], "max_pixels": 1003520},
    {"cap_pixels_per_frame": True},
]
# (max_model_len, max_num_seqs, max_num_batched_tokens, limits)
SETTINGS: list[tuple[int, int, int, dict[str, int] | None]] = [
    (32768, 16, 8192, None),
    (32768, 16, 65536, {"video": 0}),
    (20000, 4, 2048, {"image": 2, "video": 1}),
]


# --disable-chunked-mm-input: compute_mm_encoder_budget refuses an item larger than max_num_batched_tokens
# (vllm/v1/core/encoder_cache_manager.py); (stem, kwargs, (max_model_len, max_num_seqs, mnbt, limits))
CHUNKED: list[tuple[str, dict[str, Any] | None, tuple[int, int, int, dict[str, int] | None]]] = [
    ("Qwen__Qwen2.5-VL-3B-Instruct", None, (32768, 16, 8192, None)),
    ("Qwen__Qwen2.5-VL-3B-Instruct", None, (32768, 16, 32768, None)),
    ("Qwen__Qwen2.5-VL-3B-Instruct", {"max_pixels": 1003520}, (32768, 16, 8192, {"video": 0})),
    ("Qwen__Qwen2.5-VL-3B-Instruct", {"max_pixels": 1003520}, (32768, 16, 8192, None)),
    ("Qwen__Qwen3.6-27B", None, (32768, 16, 16384, None)),
    ("Qwen__Qwen3.6-27B", None, (32768, 16, 16383, None)),
    ("Qwen__Qwen3.6-27B", {"max_pixels": 1003520}, (32768, 16, 2048, None)),
    ("Qwen__Qwen3.6-27B", {"images_kwargs": {"max_pixels": 802816}}, (32768, 16, 8192, None)),
]


# --enable-mm-embeds with every modality at 0 (or --language-model-only): the budget's encoder cache for precomputed
# embeddings, max(max_num_batched_tokens, the largest item of every modality, embedding-only ones included)
EMBEDS: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
    ("Qwen__Qwen2.5-VL-3B-Instruct", None, {"limit_mm_per_prompt": {"image": 0, "video": 0}}),
    ("Qwen__Qwen2.5-VL-3B-Instruct", {"max_pixels": 1003520}, {"limit_mm_per_prompt": {"image": 0, "video": 0}}),
    ("Qwen__Qwen2.5-VL-3B-Instruct", None, {"language_model_only": True}),
    ("Qwen__Qwen3.6-27B", None, {"limit_mm_per_prompt": {"image": 0, "video": 0}}),
    ("Qwen__Qwen3.6-27B", {"max_pixels": 200704}, {"limit_mm_per_prompt": {"image": 0, "video": 0}}),
    ("Qwen__Qwen3.6-27B", {"max_pixels": 50000000}, {"limit_mm_per_prompt": {"image": 0, "video": 0}}),
]


def embeds_case(stem: str, kw: dict[str, Any] | None, extra: dict[str, Any]) -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.multimodal.encoder_budget import MultiModalBudget

    repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
    out: dict[str, Any] = {"model": repo, "mm_processor_kwargs": kw, "max_model_len": 32768,
                           "max_num_batched_tokens": 8192, "enable_mm_embeds": True, **extra}
    with tempfile.TemporaryDirectory() as d:
        _ckpt(d, stem)
        try:
            cfg = EngineArgs(model=d, max_model_len=32768, max_num_seqs=16, max_num_batched_tokens=8192,
                             load_format="dummy", enable_mm_embeds=True, **extra,
                             **({"mm_processor_kwargs": kw} if kw is not None else {})).create_engine_config()
            b = MultiModalBudget(cfg, MULTIMODAL_REGISTRY, enable_cache=False)
            out["encoder_cache_size"] = b.encoder_cache_size
            out["scheduler_encoder_cache_size"] = cfg.scheduler_config.encoder_cache_size
        except Exception as e:  # what vLLM raises
            out["error"] = {"type": type(e).__name__, "message": str(e).split("\n")[0][:400]}
    return out


def _ckpt(d: str, stem: str) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    entry = json.load(open(os.path.join(MODELS, stem + ".json")))
    json.dump(entry["config"], open(os.path.join(d, "config.json"), "w"))
    for name, body in PREPROCESSORS[stem].items():
        json.dump(body, open(os.path.join(d, name), "w"))
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIAL)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", additional_special_tokens=SPECIAL[1:8])
    fast.save_pretrained(d)


def case(stem: str, kw: dict[str, Any] | None, setting: tuple[int, int, int, dict[str, int] | None],
         chunked_off: bool = False) -> dict[str, Any]:
    from vllm.engine.arg_utils import EngineArgs
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.multimodal.encoder_budget import MultiModalBudget

    mml, seqs, mnbt, limits = setting
    repo = json.load(open(os.path.join(MODELS, stem + ".json")))["repo_id"]
    out: dict[str, Any] = {"model": repo, "mm_processor_kwargs": kw, "max_model_len": mml, "max_num_seqs": seqs,
                           "max_num_batched_tokens": mnbt, "limit_mm_per_prompt": limits}
    with tempfile.TemporaryDirectory() as d:
        _ckpt(d, stem)
        try:
            args: dict[str, Any] = {"mm_processor_kwargs": kw} if kw is not None else {}
            if limits is not None:
                args["limit_mm_per_prompt"] = limits
            if chunked_off:
                args["disable_chunked_mm_input"] = True
                out["disable_chunked_mm_input"] = True
            cfg = EngineArgs(model=d, max_model_len=mml, max_num_seqs=seqs, max_num_batched_tokens=mnbt,
                             load_format="dummy", **args).create_engine_config()
            budget = MultiModalBudget(cfg, MULTIMODAL_REGISTRY, enable_cache=False)
            out["tokens_per_item"] = dict(budget.mm_max_toks_per_item)
            out["encoder_compute_budget"] = budget.encoder_compute_budget
            out["encoder_cache_size"] = budget.encoder_cache_size
            out["items_per_batch"] = dict(budget.mm_max_items_per_batch)
            out["modality"] = budget.get_modality_with_max_tokens() if budget.mm_max_toks_per_item else None
            proc = budget.processor
            out["supported_mm_processor_kwargs"] = {k: sorted(v) for k, v in
                                                     proc.info.supported_mm_processor_kwargs.items()
                                                     if k in ("images_kwargs", "videos_kwargs")}
            counts = {m: 1 for m in budget.mm_max_toks_per_item}
            data = proc.dummy_inputs.get_dummy_mm_data(mml, counts, proc.dummy_inputs.get_mm_options(cfg.model_config)
                                                       if hasattr(proc.dummy_inputs, "get_mm_options") else {})
            if data.get("image"):
                im = data["image"][0]
                out["dummy_image"] = {"width": im.width, "height": im.height}
            if data.get("video"):
                v = data["video"][0]
                arr = v[0] if isinstance(v, tuple) else v
                out["dummy_video"] = {"frames": int(arr.shape[0]), "height": int(arr.shape[1]), "width": int(arr.shape[2])}
        except Exception as e:  # what vLLM raises for the value
            out["error"] = {"type": type(e).__name__, "message": str(e).split("\n")[0][:400]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    setup()
    import vllm

    cases = []
    for stem in PREPROCESSORS:
        for kw in (KWARGS[:2] if a.quick else KWARGS):
            for s in SETTINGS:
                c = case(stem, kw, s)
                print(json.dumps(c), file=sys.stderr, flush=True)
                cases.append(c)
    for stem, kw, s in CHUNKED:
        c = case(stem, kw, s, chunked_off=True)
        print(json.dumps(c), file=sys.stderr, flush=True)
        cases.append(c)
    embeds = [embeds_case(*e) for e in EMBEDS]
    print(json.dumps(embeds), file=sys.stderr, flush=True)
    json.dump({"release": vllm.__version__, "embeds": embeds, "produced_by": "tools/vllm_mm_processor_kwargs_oracle.py",
               "preprocessors": {json.load(open(os.path.join(MODELS, s + ".json")))["repo_id"]: p
                                 for s, p in PREPROCESSORS.items()},
               "cases": cases}, open(a.out, "w"), indent=1)
    open(a.out, "a").write("\n")


if __name__ == "__main__":
    main()
