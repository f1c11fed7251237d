"""vLLM per-rank weights against 'Model loading took X GiB' in real logs (tests/data)."""

import json

import pytest

from conftest import DATA
from vramcalc.quant import target_scheme
from vramcalc.sources.catalog import load
from vramcalc.vllm.weights import padded_vocab, pp_layer_split, weights_per_rank

GIB = 2**30
CASES = json.loads((DATA / "vllm_weight_logs.json").read_text())["cases"]
MODELLED = [c for c in CASES if not (c.get("note") or "").startswith("MXFP4")]


@pytest.mark.parametrize("case", MODELLED, ids=[f"{c['model'].split('/')[1]}-tp{c['tp']}-pp{c['pp']}-{c['quant']}-{c['dtype']}"
                                                 for c in MODELLED])
def test_weights_per_rank_within_1_percent_of_the_log(case):
    scheme = target_scheme(case["quant"]) if case["quant"] else None
    ranks = weights_per_rank(load(case["model"]), case["tp"], case["pp"], scheme, case["dtype"])
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
