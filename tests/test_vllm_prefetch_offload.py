"""The prefetch weight offloader (--offload-group-size, --offload-num-in-group, --offload-prefetch-step,
--offload-params, --offload-backend) against vLLM 0.33.0's own offloader run on the CPU
(tests/data/vllm_prefetch_offload_oracle_v0.33.0.json, tools/vllm_prefetch_offload_oracle.py): which layers
PrefetchOffloader.wrap_modules takes, the bytes it moves to the host and the StaticBufferPool post_init allocates."""

import json
import os

import pytest

from vramcalc.errors import NotModelledError
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.offload import prefetch_plan
from vramcalc.vllm.weights import layer_tensors, pp_layer_split, weights_per_rank

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_prefetch_offload_oracle_v0.33.0.json")))
FIELDS = ("offload_backend", "offload_group_size", "offload_num_in_group", "offload_prefetch_step", "cpu_offload_gb")


def _id(c):
    stage = f"-pp{c['pp']}-rank{c['rank']}" if "pp" in c else ""
    return f"{c['model']}-tp{c['tp']}{stage}-{json.dumps(c['engine_args'], sort_keys=True)}"


def _opts(c, **kw):
    a = c["engine_args"]
    return VLLMOptions(tp=c["tp"], pp=c.get("pp", 1), engine_version=FIXTURE["release"], max_model_len=4096,
                       offload_params=tuple(a.get("offload_params", ())), **{k: a[k] for k in FIELDS if k in a}, **kw)


def _sized(c):
    return set(c["engine_args"].get("offload_params", ())) <= {"experts"}


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 15 and len(FIXTURE["refused"]) >= 3
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_prefetch_offload_oracle.py" in FIXTURE["produced_by"]
    # the cases span TP 1 and 2, a partial last group, several slots, `experts` and heterogeneous layers
    assert {c["tp"] for c in FIXTURE["cases"]} == {1, 2} and {c.get("pp", 1) for c in FIXTURE["cases"]} == {1, 2, 3}
    assert any(c["model"] == "deepseek-ai/DeepSeek-V2-Lite" and c["offloaded_layers"] for c in FIXTURE["cases"])


@pytest.mark.parametrize("c", [c for c in FIXTURE["cases"] if _sized(c)], ids=_id)
def test_offload_and_buffers_against_vllm(c):
    """The layers chosen, the bytes moved to the host and the GPU buffer pool, each to the byte; the rank's weights
    are the ones without offloading, less what moved, plus the pool."""
    spec = load(c["model"])
    gpu = find_gpu("h200")
    pp, rank = c.get("pp", 1), c.get("rank", 0)  # PP cases: the stage of that rank (TP 1)
    r = check_vllm(spec, gpu, _opts(c))
    d = r.devices[rank]
    prefetch = c["offloader"] == "PrefetchOffloader"
    assert d.cpu_offload_bytes == (c["offloaded_bytes"] if prefetch else c["uva_offloaded_bytes"])
    assert d.prefetch_buffer_bytes == c["buffer_pool_bytes"]
    base = check_vllm(spec, gpu, VLLMOptions(tp=c["tp"], pp=pp, engine_version=FIXTURE["release"],
                                             max_model_len=4096))
    assert base.devices[rank].weights_bytes - d.weights_bytes == d.cpu_offload_bytes - d.prefetch_buffer_bytes
    w = weights_per_rank(spec, c["tp"], pp, version=FIXTURE["release"])[rank]
    assert w.bytes - w.rotary_cache_bytes == c["weights_bytes_rank0"]  # the same model, to the byte
    if prefetch:
        a = c["engine_args"]
        split = pp_layer_split(spec.num_layers, pp)
        start = sum(split[:w.pp_stage])
        plan = prefetch_plan(layer_tensors(spec, c["tp"]), start, start + split[w.pp_stage], a["offload_group_size"],
                             a.get("offload_num_in_group", 1), a.get("offload_prefetch_step", 1),
                             tuple(a.get("offload_params", ())))
        assert [f"model.layers.{i}" for i in plan.layers] == c["offloaded_layers"]
    codes = {m.code for m in r.warnings}
    assert ("vllm.cpu_offload.speed" in codes) == bool(d.cpu_offload_bytes) and not r.errors


@pytest.mark.parametrize("c", [c for c in FIXTURE["cases"] if not _sized(c)], ids=_id)
def test_other_segments_are_refused_as_not_modelled(c):
    with pytest.raises(NotModelledError, match="--offload-params mlp: not modelled"):
        check_vllm(load(c["model"]), find_gpu("h200"), _opts(c))


@pytest.mark.parametrize("c", FIXTURE["refused"], ids=_id)
def test_refusals_in_vllms_words(c):
    r = check_vllm(load(c["model"]), find_gpu("h200"), _opts(c))
    assert not r.fits
    e = next(m for m in r.errors if m.code == "vllm.offload.refused")
    vllm_text = c["error"].split("Value error, ")[1].split(" [type=")[0]
    assert e.text.startswith(f"ValueError: {vllm_text} [")


def test_both_offloaders_warn_as_vllm_does():
    """OffloadConfig's warning names the one it drops; --offload-backend uva keeps --cpu-offload-gb's offload."""
    spec, gpu = load("Qwen/Qwen3-8B"), find_gpu("h200")
    r = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, offload_group_size=4, cpu_offload_gb=2))
    assert any(m.code == "vllm.offload.ignored" and "Prefetch backend will be selected" in m.text for m in r.warnings)
    r = check_vllm(spec, gpu, VLLMOptions(max_model_len=4096, offload_group_size=4, cpu_offload_gb=2,
                                          offload_backend="uva"))
    assert r.devices[0].cpu_offload_bytes == 2 * 2**30 and r.devices[0].prefetch_buffer_bytes == 0
    assert any("Prefetch settings will be ignored" in m.text for m in r.warnings)


def test_pasted_flags_are_read_as_modelled():
    cmd = ("vllm serve Qwen/Qwen3-30B-A3B --max-model-len 4096 --offload-group-size 2 --offload-num-in-group 1 "
           "--offload-prefetch-step 2 --offload-params experts --offload-backend prefetch")
    _, r = read_command(cmd)
    assert r.options["offload_group_size"] == 2 and r.options["offload_params"] == ("experts",) and not r.warnings
    out = check_command(cmd, "h100-sxm")
    c = next(c for c in FIXTURE["cases"] if c["model"] == "Qwen/Qwen3-30B-A3B" and c["tp"] == 1
             and c["engine_args"] == {"offload_group_size": 2, "offload_params": ["experts"]})
    assert out.result.devices[0].cpu_offload_bytes == c["offloaded_bytes"]
    assert out.result.devices[0].prefetch_buffer_bytes == 2 * c["buffer_pool_bytes"]
    for flag in ("--offload-group-size 2", "--offload-prefetch-step 2", "--offload-params experts"):
        assert flag in out.result.command and flag in out.vramcalc_command
