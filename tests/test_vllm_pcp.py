"""--prefill-context-parallel-size against vLLM 0.33.0's own code run on the CPU (tests/data/vllm_pcp_oracle_v0.33.0.json,
tools/vllm_pcp_oracle.py): ParallelConfig's DCP sizes with PCP and the world size, and the attention backends'
supports_pcp, which leaves a model without MLA no backend."""

import json
import os

import pytest

from vramcalc.errors import NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.features import features

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_pcp_oracle_v0.33.0.json")))


def _id(c):
    return f"{c['model']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _opts(c):
    return VLLMOptions(tp=c["tp"], max_model_len=4096, engine_version=FIXTURE["release"], **c["engine_args"])


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 6
    assert "tools/vllm_pcp_oracle.py" in FIXTURE["produced_by"] and "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]


def test_only_mla_backends_support_pcp():
    """The backends a model without MLA is offered on CUDA (data/vllm_features.json pcp) all answer no; every MLA
    backend that loads here but the DeepSeek-V4 family's sparse ones answers yes."""
    b = FIXTURE["backends"]
    for name in features().pcp.non_mla_backends:
        if "error" not in b[name]:
            assert b[name]["supports_pcp"] is False, name
    assert not any(v.get("supports_pcp") for v in b.values() if not v["mla"])
    assert b["TRITON_MLA"]["supports_pcp"] and b["FLASHMLA"]["supports_pcp"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=_id)
def test_against_vllm(c):
    spec, gpu = load(c["model"]), find_gpu("h200")
    if "error" not in c and c["use_mla"]:
        with pytest.raises(NotModelledError, match=f"world size {c['world_size']} per engine"):
            check_vllm(spec, gpu, _opts(c))
        return
    r = check_vllm(spec, gpu, _opts(c))
    assert not r.fits
    if "error" in c:
        vllm_text = c["error"].split("Value error, ")[1].split(" [type=")[0]
        assert any(e.text.startswith(f"ValueError: {vllm_text}") for e in r.errors), [e.text for e in r.errors]
    else:  # the config stands; the model finds no attention backend when it is built
        assert [e.code for e in r.errors if e.code.startswith("vllm.pcp")] == ["vllm.pcp.backend"]
        assert "[PCP not supported]" in next(e.text for e in r.errors if e.code == "vllm.pcp.backend")


def test_pasted_flag_is_read():
    _, r = read_command("vllm serve Qwen/Qwen3-8B -tp 2 --prefill-context-parallel-size 2")
    assert r.options["prefill_context_parallel_size"] == 2 and not r.warnings
    _, r = read_command("vllm serve Qwen/Qwen3-8B --prefill-context-parallel-size 1")
    assert r.no_effect == ["--prefill-context-parallel-size 1"] or r.options.get("prefill_context_parallel_size") == 1
