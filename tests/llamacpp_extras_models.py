"""Small GGUF files for what llama-server loads beside a model: LoRA adapters, a draft model and a multimodal
projector, written with the real writer (gguf.GGUFWriter) as llama.cpp 4df29be reads them:

- LoRA: general.type 'adapter', adapter.type 'lora', adapter.lora.alpha; per adapted tensor NAME.lora_a {n_in, rank}
  and NAME.lora_b {rank, n_out} (src/llama-adapter.cpp llama_adapter_lora_init_impl; convert_lora_to_gguf.py).
- Draft: a smaller llama of the same vocabulary (tests/llamacpp_models.py's writer).
- mmproj: general.architecture 'clip', a SigLIP ViT with the Gemma 3 projector (tools/mtmd/clip.cpp load_hparams,
  load_tensors; convert_hf_to_gguf.py Gemma3VisionModel).

tools/record_llamacpp_extras.py loads them in a real llama.cpp and records what it prints
(tests/data/llamacpp_extras_runs.json); tests/test_llamacpp_extras.py writes them again and compares.
"""

from __future__ import annotations

from pathlib import Path

import gguf

import llamacpp_models as lm


# name -> (base model in llamacpp_models.MODELS, rank, adapted projections, tensor type)
LORAS: dict[str, tuple[str, int, tuple[str, ...], str]] = {
    "lora-r16-all-f16": ("llama-a", 16, ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"),
                         "F16"),
    "lora-r8-qv-f32": ("llama-a", 8, ("attn_q", "attn_v"), "F32"),
    "lora-r64-all-f16-q4": ("llama-q4", 64, ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                             "ffn_down"), "F16"),
}
# the base models the adapters are for: llama-a (Q8_0, mapped) and the same shape in Q4_0 (repacked on the CPU)
BASES: dict[str, lm.Shape] = {"llama-a": lm.Shape(), "llama-q4": lm.Shape(weight_type="Q4_0")}
DRAFTS: dict[str, lm.Shape] = {"llama-draft": lm.Shape(n_embd=256, n_head=4, n_head_kv=2, n_ff=768, n_layer=2)}
# name -> (image_size, patch_size, n_embd, n_ff, n_head, n_layer, text model n_embd, tensor type)
MMPROJS: dict[str, tuple[int, int, int, int, int, int, int, str]] = {
    "mmproj-gemma3-224": (224, 14, 256, 1024, 4, 2, 512, "F16"),
    "mmproj-gemma3-448": (448, 14, 384, 1536, 6, 3, 512, "F16"),
}


def write_base(name: str, path: Path) -> Path:
    return lm.write_model(lm._llama(BASES[name] if name in BASES else DRAFTS[name]), name, path)


def lora_tensors(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    base, rank, targets, type_ = LORAS[name]
    m = lm._llama(BASES[base])
    out = []
    for tname, ne, _ in m.tensors:
        if len(ne) == 2 and tname.startswith("blk.") and tname.split(".")[2] in targets:
            out.append((tname + ".lora_a", (ne[0], rank), type_))
            out.append((tname + ".lora_b", (rank, ne[1]), type_))
    return out


def write_lora(name: str, path: Path) -> Path:
    base, rank, _, _ = LORAS[name]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(2 * rank))
    lm.write_tensors(w, lora_tensors(name))
    return path


def mmproj_tensors(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    image, patch, d, ff, _, n_layer, n_text, wt = MMPROJS[name]
    n = (image // patch) ** 2
    t = [("v.patch_embd.weight", (patch, patch, 3, d), wt), ("v.patch_embd.bias", (d,), "F32"),
         ("v.position_embd.weight", (d, n), "F32")]
    for i in range(n_layer):
        p = f"v.blk.{i}."
        for a in ("attn_q", "attn_k", "attn_v", "attn_out"):
            t += [(p + a + ".weight", (d, d), wt), (p + a + ".bias", (d,), "F32")]
        t += [(p + "ln1.weight", (d,), "F32"), (p + "ln1.bias", (d,), "F32"),
              (p + "ln2.weight", (d,), "F32"), (p + "ln2.bias", (d,), "F32"),
              (p + "ffn_up.weight", (d, ff), wt), (p + "ffn_up.bias", (ff,), "F32"),
              (p + "ffn_down.weight", (ff, d), wt), (p + "ffn_down.bias", (d,), "F32")]
    t += [("v.post_ln.weight", (d,), "F32"), ("v.post_ln.bias", (d,), "F32"),
          ("mm.input_projection.weight", (n_text, d), wt), ("mm.soft_emb_norm.weight", (d,), "F32")]
    return t


def write_mmproj(name: str, path: Path, projector: str = "gemma3") -> Path:
    image, patch, d, ff, nh, n_layer, n_text, _ = MMPROJS[name]
    w = gguf.GGUFWriter(str(path), "clip")
    w.add_name(name)
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", projector)
    w.add_uint32("clip.vision.image_size", image)
    w.add_uint32("clip.vision.patch_size", patch)
    w.add_uint32("clip.vision.embedding_length", d)
    w.add_uint32("clip.vision.feed_forward_length", ff)
    w.add_uint32("clip.vision.attention.head_count", nh)
    w.add_uint32("clip.vision.block_count", n_layer)
    w.add_uint32("clip.vision.projection_dim", n_text)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    w.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    w.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    w.add_bool("clip.use_gelu", True)
    lm.write_tensors(w, mmproj_tensors(name))
    return path
