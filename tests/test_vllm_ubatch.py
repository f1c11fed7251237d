"""--enable-dbo / --ubatch-size against vLLM 0.33.0's own config run on the CPU (tests/data/vllm_ubatch_oracle_v0.33.0.json,
tools/vllm_ubatch_oracle.py): micro-batching on or off as vLLM sets it, and its refusal of an all-to-all backend that
does not micro-batch, in its words."""

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_ubatch_oracle_v0.33.0.json")))


def _id(c):
    return f"{c['model']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _check(c):
    a = c["engine_args"]
    return check_vllm(load(c["model"]), find_gpu("h100-sxm"), VLLMOptions(
        engine_version=FIXTURE["release"], max_model_len=4096, enable_dbo=a.get("enable_dbo", False),
        ubatch_size=a.get("ubatch_size", 0), all2all_backend=a.get("all2all_backend")))


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and FIXTURE["cases"] and FIXTURE["unsupported"]
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_ubatch_oracle.py" in FIXTURE["produced_by"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_micro_batching_as_vllm_sets_it(c):
    r = _check(c)
    codes = {m.code for m in r.errors + r.warnings}
    assert "vllm.ubatch.refused" not in codes
    assert ("vllm.ubatch.unsized" in codes) == c["use_ubatching"]
    if c["use_ubatching"]:
        (w,) = [w for w in r.warnings if w.code == "vllm.ubatch.unsized"]
        assert f"{c['num_ubatches']} micro-batches" in w.text


@pytest.mark.parametrize("u", [u for u in FIXTURE["unsupported"] if "all2all" in u["error"]], ids=_id)
def test_refusals_are_vllms(u):
    r = _check(u)
    theirs = u["error"].removeprefix("ValidationError: 1 validation error for VllmConfig Assertion failed, ")
    theirs = theirs.split(" [type=")[0]
    (e,) = [e for e in r.errors if e.code == "vllm.ubatch.refused"]
    assert not r.fits and theirs in e.text, (theirs, e.text)


def test_pasted_flags_are_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 4096"
    out = check_command(f"{base} --enable-dbo", "h100-sxm")
    assert not out.fits and any("Microbatching currently only supports" in e.text for e in out.result.errors)
    _, r = read_command(f"{base} --enable-dbo --all2all-backend deepep_low_latency")
    assert r.options["all2all_backend"] == "deepep_low_latency" and r.options["enable_dbo"] is True
    assert not r.warnings  # the backend is modelled too (tests/test_vllm_all2all.py)
    _, r = read_command(f"{base} --enable-dbo --disable-dbo")
    assert r.options["enable_dbo"] is False
    _, r = read_command(f"{base} --ubatch-size 1")
    assert r.options["ubatch_size"] == 1 and not r.warnings
