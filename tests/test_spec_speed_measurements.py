"""The speed estimate with speculative decoding against published measurements (tests/spec_speed_cases.py).

vLLM: 23 published pairs of single-stream runs with and without a drafter (EAGLE-1, EAGLE-3, MTP), the printed
mean acceptance length taken as the input where a post prints one. The estimate's speed-up errs fast, by 12-39% on
EAGLE: the figures it prints (data/vllm_spec.json speedup_check) are recomputed here, by split, and every run is
pinned within its split's measured bound. llama.cpp: the two published draft-model runs of
data/llamacpp_speculative.json, one fitted, one held out."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest

import spec_speed_cases as S

CHECK = json.loads((Path(__file__).parent.parent / "vramcalc" / "data" / "vllm_spec.json").read_text())["speedup_check"]
VLLM = S.vllm_cases()


@lru_cache(maxsize=None)
def _predicted(case_id: str) -> dict:
    return S.vllm_predict(next(c for c in VLLM if c["id"] == case_id))


def test_split_rule_is_the_recorded_one():
    """Fixed before any comparison: held out when crc32(url#id) is odd; both splits are populated."""
    assert "zlib.crc32(url + '#' + id) is odd" in S.measured()["_source"]
    splits = [c["split"] for c in VLLM]
    assert splits.count("fit") == CHECK["fit"]["n"] and splits.count("held_out") == CHECK["held_out"]["n"]


def test_acceptance_length_becomes_the_rate_it_was_printed_from():
    for length, k in ((2.36, 2), (3.54, 7), (1.9, 1)):
        a = S.rate_from_length(length, k)
        assert abs(sum(a ** i for i in range(k + 1)) - length) < 1e-6
    assert abs(S.rate_from_length(1.9, 1) - 0.9) < 1e-6


def test_every_case_names_its_source_and_setup():
    for c in S.measured()["cases"]:
        assert c["url"].startswith("https://github.com/") and c["where"] and c["gpu"] and c["model"]
        assert ("baseline_tok_s" in c) != ("baseline_tpot_ms" in c) and ("spec_tok_s" in c) != ("spec_tpot_ms" in c)
        assert c.get("acceptance_length") or c.get("acceptance_note")
        if c["method"] in ("eagle", "eagle3"):
            assert c["draft"] and c["draft_config"] in S.measured()["draft_configs"]


@pytest.mark.parametrize("case", VLLM, ids=lambda c: c["id"])
def test_vllm_speed_up_within_the_measured_bound(case):
    """Each run's speed-up error lies within its split's worst (the bound the estimate states), and the
    baseline is the same estimate the speed-up divides by."""
    r = _predicted(case["id"])
    bound = CHECK[case["split"]]
    print(f"\n{case['id']} ({case['split']}): speed-up {r['speedup']:.2f}x vs {r['measured_speedup']:.2f}x "
          f"({r['speedup_error']:+.1%})")
    assert abs(r["speedup_error"]) <= abs(bound["worst"]) + 0.005
    assert r["speedup"] > 1.0  # the estimate never plans a slowdown for a drafter with a stated acceptance


def test_vllm_figures_the_estimate_prints():
    """data/vllm_spec.json speedup_check, recomputed over all runs and by split (what the speed line prints)."""
    errors = {c["id"]: _predicted(c["id"])["speedup_error"] for c in VLLM}
    for name, ids in (("all", [c["id"] for c in VLLM]), ("fit", [c["id"] for c in VLLM if c["split"] == "fit"]),
                      ("held_out", [c["id"] for c in VLLM if c["split"] == "held_out"])):
        n, median, p90, worst = S.summary([errors[i] for i in ids])
        want = CHECK if name == "all" else CHECK[name]
        print(f"\n{name}: n {n}, median {median:.1%}, p90 {p90:.1%}, worst {worst:+.1%}")
        assert (n, round(median, 2), round(p90, 2), round(worst, 2)) == (want["n"], want["median"], want["p90"],
                                                                         want["worst"])


def test_vllm_eagle_errs_fast_and_the_strix_halo_moe_sweep_is_close():
    """The known bias, stated rather than hidden: every EAGLE run is over-predicted (12-39%); the Strix Halo
    Qwen3.6-35B-A3B MTP sweep at the default acceptance is within 3.5%."""
    eagle = [_predicted(c["id"])["speedup_error"] for c in VLLM if c["method"] in ("eagle", "eagle3")]
    assert len(eagle) == 14 and 0.10 <= min(eagle) and max(eagle) <= 0.40
    strix = [_predicted(c["id"])["speedup_error"] for c in VLLM if c["id"].startswith("strix-halo-qwen36-35b")]
    assert len(strix) == 4 and max(abs(e) for e in strix) <= 0.035


@pytest.mark.parametrize("case", S.llamacpp_cases(), ids=lambda c: f"{c['id']}-{c['split']}")
def test_llamacpp_speed_up_against_the_published_runs(case):
    """The fitted CUDA run within 8% of its speed-up; the held-out Metal run over-predicted by 63% (the 17-token
    verify batch on Metal is not in the roofline step: data/llamacpp_speculative.json)."""
    r = S.llamacpp_predict(case)
    print(f"\n{case['id']} ({case['split']}): speed-up {r['speedup']:.2f}x vs {r['measured_speedup']:.2f}x "
          f"({r['speedup_error']:+.1%}), tokens/s {r['spec_error']:+.1%}")
    if case["split"] == "fit":
        assert abs(r["speedup_error"]) <= 0.08 and abs(r["spec_error"]) <= 0.02
    else:
        assert 0.55 <= r["speedup_error"] <= 0.70 and abs(r["spec_error"] - 0.47) <= 0.02
