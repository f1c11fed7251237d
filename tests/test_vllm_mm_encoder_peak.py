"""vramcalc/vllm/mm_profile.py's encoder forward peak against vLLM 0.34.0's own vision towers run on the meta device
under a live-bytes tracker that rounds as the CUDA caching allocator (tools/vllm_mm_encoder_peak_oracle.py,
tests/data/vllm_mm_encoder_peak_oracle_v0.34.0.json): the peak and what stays held after, byte for byte."""

import json

import pytest

from conftest import DATA
import copy

from vramcalc.sources.catalog import config_of, load
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.vllm.mm_profile import MAX_SPLIT, cuda_allocated, encoder_peak, kv_cost, max_items

ORACLE = json.loads((DATA / "vllm_mm_encoder_peak_oracle_v0.34.0.json").read_text())
CASES = ORACLE["cases"]


def _vision(c):
    """The catalog model's tower, or the constructed one the case names (its vision_config changed)."""
    if not c["vision_config_override"]:
        return load(c["model"]).vision
    cfg = copy.deepcopy(config_of(c["model"]))
    cfg["vision_config"].update(c["vision_config_override"])
    return spec_from_config(cfg, model_id=c["model"], source="test", where="test").vision


def _id(c):
    over = "".join(f"+{k}={v}" for k, v in c["vision_config_override"].items())
    return (f"{c['model'].split('/')[1]}{over}-tp{c['tp']}-{c['modality']}-{'x'.join(map(str, c['grid_thw']))}"
            f"x{c['items']}-{c['attn_backend']}")


def test_the_fixture_names_its_release_and_maker():
    assert ORACLE["release"] == "0.34.0"
    assert "vllm_mm_encoder_peak_oracle.py" in ORACLE["produced_by"]
    assert len(CASES) >= 36 and {c["tp"] for c in CASES} == {1, 2} and {c["modality"] for c in CASES} == {"image", "video"}
    # every case under each vision attention backend vramcalc sizes (--mm-encoder-attn-backend)
    assert {c["attn_backend"] for c in CASES} == {"FLASH_ATTN", "TRITON_ATTN", "TORCH_SDPA"}
    assert all(len([c for c in CASES if c["attn_backend"] == b]) == len(CASES) // 3 for b in ("FLASH_ATTN",
                                                                                                "TRITON_ATTN", "TORCH_SDPA"))


def test_each_towers_both_phases_peak_somewhere():
    """The cases reach the attention and the MLP phase of both towers (the constructed widths flip them)."""
    seen = {(_vision(c).kind, encoder_peak(_vision(c), c["tp"], tuple(c["grid_thw"]), c["items"],
                                           backend=c["attn_backend"]).phase) for c in CASES}
    assert seen == {(k, ph) for k in ("qwen2_5_vl_vision", "qwen3_5_vision") for ph in ("attention", "mlp")}


@pytest.mark.parametrize("c", CASES, ids=[_id(c) for c in CASES])
def test_forward_peak_and_held_bytes_equal_vllms_towers(c):
    p = encoder_peak(_vision(c), c["tp"], tuple(c["grid_thw"]), c["items"], backend=c["attn_backend"])
    assert p.forward_peak == c["forward_peak_bytes"]
    assert p.held == c["live_after_bytes"]
    assert c["encoder_output_bytes"] <= c["live_after_bytes"]
    # TORCH_SDPA: the live set at torch_sdpa_wrapper's torch.cat (each sequence's output and the joined one)
    assert p.sdpa_join == c.get("sdpa_join_live_bytes")


def test_flashinfer_is_not_sized():
    """FLASHINFER's cuDNN path (its workspace and cuDNN's own allocations) has no formula: the estimate is None."""
    from vramcalc.vllm.mm_profile import estimate

    c = CASES[0]
    with pytest.raises(ValueError, match="FLASHINFER"):
        encoder_peak(_vision(c), 1, (1, 64, 64), 1, backend="FLASHINFER")
    v = load("Qwen/Qwen2.5-VL-3B-Instruct").vision
    kw = dict(limits=None, encoder_tp_mode=None, mnbt=8192, max_num_seqs=256, max_model_len=32768,
              chunked_prefill=True, lm_transient=0, dtype_bytes=2)
    assert estimate(v, "Qwen/Qwen2.5-VL-3B-Instruct", 1, **kw, backend="FLASHINFER") is None
    e = estimate(v, "Qwen/Qwen2.5-VL-3B-Instruct", 1, **kw, backend="TORCH_SDPA")
    assert e is not None and e.backend == "TORCH_SDPA"


def test_the_allocator_rounding():
    """512-byte blocks; a request of max_split_size (20 MiB in the profile run) or more takes its 2 MiB-rounded
    segment (c10/cuda/CUDACachingAllocator.cpp)."""
    assert cuda_allocated(1) == 512 and cuda_allocated(513) == 1024
    assert cuda_allocated(MAX_SPLIT - 512) == MAX_SPLIT - 512
    assert cuda_allocated(MAX_SPLIT + 1) == MAX_SPLIT + 2 * 2**20


def test_kv_cost_is_the_peak_over_the_lm_peak():
    """max(forward peak, held + LM peak) - LM peak: the held outputs alone when the LM's peak is the larger."""
    c = CASES[0]
    p = encoder_peak(load(c["model"]).vision, c["tp"], tuple(c["grid_thw"]), c["items"])
    assert kv_cost(p, 0) == p.forward_peak
    assert kv_cost(p, 10 * p.forward_peak) == p.held


def test_items_per_batch_follow_the_budget():
    """MultiModalBudget._get_max_items: one 16384-token image under an 8192-token budget; four under 65536."""
    assert max_items(16384, 8192, None, None, 999, 128000, 256) == 1
    assert max_items(16384, 65536, None, None, 999, 128000, 256) == 4
    assert max_items(16384, 65536, None, None, 999, 128000, 1) == 4 and max_items(16384, 65536, None, None, 1, 16384, 1) == 1
