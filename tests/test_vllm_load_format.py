"""--load-format against vLLM 0.33.0's own loader registry run on the CPU (tests/data/vllm_load_format_oracle_v0.33.0.json,
tools/vllm_load_format_oracle.py): a format whose loader builds the model as BaseModelLoader does changes no resident
byte, a format the release does not register is refused in vLLM's words, the others are named as not sized."""

import json
import os

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.features import features

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_load_format_oracle_v0.33.0.json")))
FORMATS = FIXTURE["formats"]


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0"
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_load_format_oracle.py" in FIXTURE["produced_by"]


def test_the_table_is_the_releases():
    """same_model: every registered format whose loader's load_model is BaseModelLoader's; own_path: the
    registered others (two of which need packages the CPU machine lacks); the rest are not registered."""
    lf = features().load_format
    base = {v for v, r in FORMATS.items() if r.get("base_load_model")}
    assert set(lf.same_model) == base
    assert set(lf.own_path) == {v for v, r in FORMATS.items() if r["in_load_formats"]} - base
    assert set(lf.staging) <= base


def _check(value, **kw):
    return check_vllm(load("Qwen/Qwen3-8B"), find_gpu("h100-sxm"), VLLMOptions(
        engine_version="0.33.0", max_model_len=8192, load_format=value, **kw))


@pytest.mark.parametrize("value", sorted(FORMATS))
def test_each_format_as_vllm_reads_it(value):
    row = FORMATS[value]
    plain = _check("auto")
    r = _check(value)
    if "error" in row and not row["in_load_formats"]:  # not registered: get_model_loader refuses it
        (e,) = [e for e in r.errors if e.code == "vllm.load_format.unsupported"]
        assert not r.fits and e.text.startswith(row["error"])
        return
    assert r.devices[0].weights_bytes == plain.devices[0].weights_bytes
    assert r.num_gpu_blocks == plain.num_gpu_blocks and r.fits == plain.fits
    unsized = [w for w in r.warnings if w.code == "vllm.load_format.unsized"]
    assert bool(unsized) == (value in features().load_format.staging + features().load_format.own_path)


def test_pasted_flag_is_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    _, r = read_command(f"{base} --load-format SafeTensors")
    assert r.options["load_format"] == "SafeTensors" and not r.warnings
    out = check_command(f"{base} --load-format bitsandbytes", "h100-sxm")
    assert not out.fits and any("Load format `bitsandbytes` is not supported" in e.text for e in out.result.errors)
    out = check_command(f"{base} --load-format dummy", "h100-sxm")
    assert out.fits and "--load-format dummy" in out.result.command and "--load-format dummy" in out.vramcalc_command
