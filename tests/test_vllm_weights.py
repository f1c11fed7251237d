"""vLLM per-rank weights against 'Model loading took X GiB' in real logs (tests/data)."""

import json

import pytest

from conftest import DATA
from vramcalc.quant import target_scheme
from vramcalc.sources.catalog import load
from vramcalc.vllm.weights import padded_vocab, pp_layer_split, weights_per_rank

GIB = 2**30
CASES = json.loads((DATA / "vllm_weight_logs.json").read_text())["cases"]
MODELLED = CASES  # MXFP4 cases carry the MoE kernel whose layout they were loaded in


@pytest.mark.parametrize("case", MODELLED, ids=[f"{c['model'].split('/')[1]}-tp{c['tp']}-pp{c['pp']}-{c['quant']}-{c['dtype']}"
                                                 f"-{c.get('log_id', '')}" for c in MODELLED])
def test_weights_per_rank_within_1_percent_of_the_log(case):
    scheme = target_scheme(case["quant"]) if case["quant"] else None
    ranks = weights_per_rank(load(case["model"]), case["tp"], case["pp"], scheme, case["dtype"],
                             case.get("mxfp4_backend"))
    got = ranks[0].bytes / GIB  # rank 0 prints the log line
    assert abs(got - case["weights_gib"]) / case["weights_gib"] < 0.01


def test_pp_split_follows_get_pp_indices():
    assert pp_layer_split(30, 4) == [7, 8, 8, 7]  # the last stage never takes an extra layer
    assert pp_layer_split(32, 2) == [16, 16]
    assert pp_layer_split(36, 3) == [12, 12, 12]
    with pytest.raises(ValueError):
        pp_layer_split(4, 8)


def test_kv_projection_is_replicated_when_tp_exceeds_kv_heads():
    spec = load("meta-llama/Llama-3.1-8B")  # 8 KV heads
    w8 = weights_per_rank(spec, 8)[0].bytes
    w16 = weights_per_rank(spec, 16)[0].bytes
    k_v_per_layer = 2 * 128 * 4096 * 2  # one k head + one v head, bf16: the same at TP 8 and 16
    assert w8 - w16 > 0
    # per rank = sharded / TP + replicated (65 norm vectors) + k/v (one head each, at TP 8 and 16)
    # so (w8 - rope) - 2 (w16 - rope) = -(replicated + k/v)
    rope = weights_per_rank(spec, 8)[0].rotary_cache_bytes
    assert (w8 - rope) - 2 * (w16 - rope) == -(32 * k_v_per_layer + 65 * 4096 * 2)


def test_vocab_padding():
    assert padded_vocab(32000) == 32000 and padded_vocab(151665) == 151680


@pytest.mark.parametrize("model,gpu,backend,logged_gib,tol", [
    # vllm-project/vllm#23278 (vllm_dev id 43): Marlin MXFP4 fallback on an H100, held out
    ("openai/gpt-oss-120b", "h100-sxm", "marlin", 65.9651, 0.002),
    # llm-d empirical-vllm-memory-results.md, vLLM 0.11.0 on H100 (ids 7-8): the Triton factor is fitted on these
    ("openai/gpt-oss-120b", "h100-sxm", None, 64.38, 0.003),
    ("openai/gpt-oss-20b", "h100-sxm", None, 13.47, 0.003),
])
def test_gpt_oss_mxfp4_experts_in_the_kernel_layout(model, gpu, backend, logged_gib, tol):
    from vramcalc.gpus import find_gpu
    from vramcalc.vllm.engine import VLLMOptions, check_vllm

    r = check_vllm(load(model), find_gpu(gpu), VLLMOptions(max_model_len=4096, moe_backend=backend))
    assert abs(r.devices[0].weights_bytes / 2**30 - logged_gib) / logged_gib < tol
    # Marlin pads I to 128 and H to 256 (2880 -> 2944 x 3072): 9% more expert bytes than the checkpoint
    ckpt = weights_per_rank(load(model))[0].bytes
    assert r.devices[0].weights_bytes > ckpt


def test_marlin_is_chosen_on_ampere_and_consumer_blackwell():
    from vramcalc.vllm.weights import mxfp4_moe_backend

    assert [mxfp4_moe_backend(cc) for cc in ("8.6", "8.9", "9.0", "10.0", "12.0", None)] == \
        ["marlin", "marlin", "triton_hopper", "flashinfer_trtllm", "marlin", None]
