"""--kda-prefill-backend / --kda-decode-backend against vLLM 0.33.0's own code run on CPU
(tests/data/vllm_kda_oracle_v0.33.0.json, tools/vllm_kda_oracle.py): the platform refusals in vLLM's words; the
flags stay not modelled (Kimi delta attention, which vramcalc has no reader for)."""

from __future__ import annotations

import functools
import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import read_command
from vramcalc.sources.catalog import load as _load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

DOC = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_kda_oracle_v0.33.0.json")))
load = functools.lru_cache(maxsize=None)(_load)
PREFILL = [c for c in DOC["cases"] if "kda_prefill_backend" in c["engine_args"]]
DECODE = [c for c in DOC["cases"] if "kda_decode_backend" in c["engine_args"]]
# the platform each refused choice needs (vllm/engine/arg_utils.py: flashkda is_cuda, fused is_rocm): a GPU of the
# other vendor gets the refusal the CPU platform, neither, gave
NEEDS = {"flashkda": ("h100", "mi300x"), "fused": ("mi300x", "h100")}


def _id(c):
    return json.dumps(c["engine_args"], sort_keys=True)


def test_fixture_names_release_and_method():
    assert DOC["release"] == "0.33.0" and DOC["platform"] == {"is_cuda": False, "is_rocm": False}
    assert "tools/vllm_kda_oracle.py" in DOC["produced_by"] and "VLLM_TARGET_DEVICE=cpu" in DOC["produced_by"]
    assert {c["engine_args"]["kda_prefill_backend"] for c in PREFILL} == {"auto", "triton", "flashkda", "flashinfer",
                                                                          "fused"}
    assert sorted(c["engine_args"]["kda_prefill_backend"] for c in PREFILL if "error" in c) == ["flashkda", "fused"]


def _errors(c, gpu):
    r = check_vllm(load(c["model"]), find_gpu(gpu), VLLMOptions(max_model_len=8192, **c["engine_args"]))
    return [e.text.split(" [")[0] for e in r.errors if e.code == "vllm.kda_prefill.refused"]


@pytest.mark.parametrize("c", PREFILL, ids=_id)
def test_kda_prefill_backend_refusals_are_vllm_s(c):
    """A refused choice, on a GPU of the other platform, gets vLLM's words; on its own platform, and every choice
    vLLM took, none."""
    b = c["engine_args"]["kda_prefill_backend"]
    if "error" in c:
        own, other = NEEDS[b]
        assert _errors(c, other) == [c["error"]]
        assert _errors(c, own) == []
    else:
        assert c["additional_config"] == c["engine_args"]
        assert _errors(c, "h100") == [] and _errors(c, "mi300x") == []


@pytest.mark.parametrize("c", DECODE, ids=_id)
def test_kda_decode_backend_is_taken_on_any_platform(c):
    assert "error" not in c and c["additional_config"] == c["engine_args"]
    for gpu in ("h100", "mi300x"):
        r = check_vllm(load(c["model"]), find_gpu(gpu), VLLMOptions(max_model_len=8192))
        assert r.fits


@pytest.mark.parametrize("c", PREFILL + DECODE, ids=_id)
def test_pasted_kda_flags_change_nothing_here_and_prefill_is_read_for_its_refusal(c):
    """Only Kimi-Linear / Kimi-K3 / GLM-5-Next layers read them, families vramcalc does not read: the decode backend
    is listed as no effect on memory, the prefill backend is read for vLLM's platform refusals and changes nothing
    else (its accepted choices leave the catalog model's check as it is: test_kda_prefill_backend_refusals_are_vllm_s above)."""
    ((arg, b),) = c["engine_args"].items()
    name = "--" + arg.replace("_", "-")
    _, read = read_command(f"vllm serve {c['model']} --max-model-len 8192 {name} {b}")
    assert not [w for w in read.warnings if w.code == "command.not_modelled"]
    assert read.options.get("kda_prefill_backend") == (b if arg == "kda_prefill_backend" else None)
    assert "kda_decode_backend" not in read.options
    assert (f"{name} {b}" in read.no_effect) == (arg == "kda_decode_backend")
