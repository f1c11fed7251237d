"""VLLM_KV_CACHE_LAYOUT against vLLM 0.34.0's own selection and resolution run on CPU
(tests/data/vllm_kv_layout_backend_oracle_v0.34.0.json, tools/vllm_kv_layout_backend_oracle.py): the attention
backends each kind of layer runs on each GPU, the layout vLLM resolves, and its refusal in its words; and 0.33.0's on
the cases where FlashInfer runs off SM 10.x, whose layouts it did not yet restrict there
(tests/data/vllm_kv_layout_backend_oracle_v0.33.0.json)."""

from __future__ import annotations

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.kv_layout import layer_backends, resolve

HERE = os.path.join(os.path.dirname(__file__), "data")
ORACLE = json.load(open(os.path.join(HERE, "vllm_kv_layout_backend_oracle_v0.34.0.json")))
ORACLE_033 = json.load(open(os.path.join(HERE, "vllm_kv_layout_backend_oracle_v0.33.0.json")))
GPU_BY_CC = {"8.0": "a100-80gb-sxm", "8.6": "rtx-3090", "8.9": "l40s", "9.0": "h100-sxm", "10.0": "b200",
             "12.0": "rtx-5090"}
# the first run's cases: no --attention-backend, no environment (cases 54-64: tests/test_vllm_attention_selection.py)
CASES = [c for c in ORACLE["cases"] if "error" not in c and c.get("attention_backend") is None and not c.get("env")]
RELEASE_CASES = [("0.34.0", c) for c in CASES] + [("0.33.0", c) for c in ORACLE_033["cases"]]
LAYOUTS = ["default", "LBNHC", "LBHNC", "LHBNC", "BLHNC", "BLNHC", "BHLNC", "NHD", "HND"]


def test_oracle_is_vllm_0_34_on_cpu():
    assert ORACLE["release"] == "0.34.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE["produced_by"]
    assert ORACLE_033["release"] == "0.33.0" and "VLLM_TARGET_DEVICE=cpu" in ORACLE_033["produced_by"]
    assert not [c for c in ORACLE["cases"] + ORACLE_033["cases"] if "error" in c]
    assert {c["compute_capability"] for c in CASES} == set(GPU_BY_CC)


def _case_id(rc: tuple[str, dict]) -> str:
    release, c = rc
    return f"{release}-{c['model']}-sm{c['compute_capability']}-{c['kv_cache_dtype']}"


@pytest.mark.parametrize("release,case", RELEASE_CASES, ids=[_case_id(rc) for rc in RELEASE_CASES])
def test_backends_and_layouts_match_vllm(release, case):
    """Per case: the backends vramcalc picks (per layer kind; MLA layers' backends, which declare no layout, are
    not named), the layouts the worker reports, and for VLLM_KV_CACHE_LAYOUT unset and each of its eight names the
    layout vLLM resolves or its refusal, word for word."""
    spec = load(case["model"])
    gpu = find_gpu(GPU_BY_CC[case["compute_capability"]])
    kv = case["kv_cache_dtype"]
    picked = layer_backends(spec, gpu, kv)
    mla = [k for k in case["layer_kinds"] if k["use_mla"]]
    ours = {v for k, v in picked.items() if k != "MLA"}
    assert ours == {k["backend"] for k in case["layer_kinds"] if not k["use_mla"]}
    assert ("MLA" in picked) == bool(mla)
    for name in LAYOUTS:
        res = resolve(spec, gpu, kv, None if name == "default" else name, release)
        assert res is not None
        want = case["resolutions"][name]
        if "refusal" in want:
            assert res.layout is None and res.refusal == want["refusal"], name
        else:
            assert res.refusal is None and res.layout == want["kv_cache_layout"], name
    assert res.supported == case["supported_layouts"]


def test_refusal_stops_the_check_and_a_kept_layout_keeps_the_figures():
    """A refused layout is an error in vLLM's words; an accepted one a note, with the default layout's KV tokens."""
    spec = load("Qwen/Qwen3-0.6B")
    b200 = find_gpu("b200")
    base = check_vllm(spec, b200, VLLMOptions(max_model_len=4096))
    bad = check_vllm(spec, b200, VLLMOptions(max_model_len=4096, kv_cache_layout="NHD"))
    err = [e for e in bad.errors if e.code == "vllm.kv_layout.refused"]
    row = next(c for c in CASES if c["model"] == "Qwen/Qwen3-0.6B" and c["compute_capability"] == "10.0"
               and c["kv_cache_dtype"] == "auto")
    assert err and err[0].text.startswith("ValueError: " + row["resolutions"]["NHD"]["refusal"])
    assert not bad.fits
    ok = check_vllm(spec, b200, VLLMOptions(max_model_len=4096, kv_cache_layout="HND"))
    assert ok.fits and "vllm.kv_layout.resolved" in {w.code for w in ok.warnings}
    assert ok.kv_cache_tokens == base.kv_cache_tokens > 0


def test_pasted_command_reads_the_variable():
    from vramcalc.pasted_command import check_command, flag_classes

    entry = flag_classes()["vllm_env"]["VLLM_KV_CACHE_LAYOUT"]
    assert entry["class"] == "modelled" and "vllm_kv_layout_backend_oracle_v0.34.0.json" in entry["note"]
    r = check_command("VLLM_KV_CACHE_LAYOUT=NHD vllm serve Qwen/Qwen3-0.6B --max-model-len 4096", "b200")
    assert "vllm.kv_layout.refused" in {e.code for e in r.result.errors}
    assert "--kv-cache-layout NHD" in r.vramcalc_command
    r = check_command("VLLM_KV_CACHE_LAYOUT=LHBNC vllm serve Qwen/Qwen3-0.6B --max-model-len 4096", "h100")
    assert r.result.fits and not [w for w in r.warnings if w.code == "command.not_modelled"]
    with pytest.raises(Exception, match="Invalid value 'XYZ' for VLLM_KV_CACHE_LAYOUT"):
        check_command("VLLM_KV_CACHE_LAYOUT=XYZ vllm serve Qwen/Qwen3-0.6B", "h100")
