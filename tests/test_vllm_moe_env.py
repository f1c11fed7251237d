"""vLLM's MoE variables as pasted commands read them (vramcalc/data/command_flags.json vllm_env; v0.33.0 sources named
in each entry's note)."""

from vramcalc.pasted_command import read_command

BASE = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 8192"


def test_moe_skip_padding_changes_no_allocation():
    """VLLM_MOE_SKIP_PADDING only rewrites expert ids in tensors of fixed shapes: listed as no effect; beside a
    DeepEP / NIXL all-to-all backend (not modelled itself) it warns, naming it."""
    for v in ("0", "1"):
        _, r = read_command(f"VLLM_MOE_SKIP_PADDING={v} {BASE}")
        assert r.no_effect == ["VLLM_MOE_SKIP_PADDING"] and not r.warnings
    _, r = read_command(f"VLLM_MOE_SKIP_PADDING=0 {BASE} --enable-expert-parallel --data-parallel-size 2 "
                        "--all2all-backend deepep_high_throughput")
    said = [w.text for w in r.warnings if w.text.startswith("VLLM_MOE_SKIP_PADDING")]
    assert len(said) == 1 and "--all2all-backend" in said[0]
