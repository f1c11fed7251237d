"""--all2all-backend, VLLM_DEEPEP_BUFFER_SIZE_MB and VLLM_DEEPEP_HIGH_THROUGHPUT_FORCE_INTRA_NODE against vLLM 0.33.0's own
code run on the CPU (tests/data/vllm_all2all_oracle_v0.33.0.json, tools/vllm_all2all_oracle.py): the batched DP MoE
default of max_num_batched_tokens as EngineArgs.create_engine_config sets it, and the DeepEP buffer sizes vLLM's
all-to-all managers ask DeepEP for."""

import json
import os

import pytest

from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.sources.catalog import load
from vramcalc.vllm import all2all
from vramcalc.vllm.engine import VLLMOptions, check_vllm

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_all2all_oracle_v0.33.0.json")))
MIB = 1 << 20


def _opts(a, **kw):
    return VLLMOptions(engine_version=FIXTURE["release"], max_model_len=a.get("max_model_len", 8192),
                       data_parallel_size=a["data_parallel_size"], enable_expert_parallel=a["enable_expert_parallel"],
                       all2all_backend=a["all2all_backend"], max_num_batched_tokens=a.get("max_num_batched_tokens"),
                       enable_chunked_prefill=a.get("enable_chunked_prefill", True), **kw)


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and FIXTURE["batched"] and FIXTURE["deepep"]
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_all2all_oracle.py" in FIXTURE["produced_by"]


@pytest.mark.parametrize("c", FIXTURE["batched"], ids=lambda c: json.dumps(c["engine_args"], sort_keys=True))
def test_batched_dp_moe_as_vllm_sets_it(c):
    opts = _opts(c["engine_args"])
    assert all2all.batched_dp_moe(opts) == c["use_batched_dp_moe"]
    if c["use_batched_dp_moe"] or c["engine_args"].get("max_num_batched_tokens"):
        # vLLM's CPU platform has its own batch defaults (get_batch_defaults): the others are not comparable
        r = check_vllm(load(c["model"]), find_gpu("h100-sxm"), opts)
        assert r.layout.max_num_batched_tokens == c["max_num_batched_tokens"]
        codes = {w.code for w in r.warnings}
        assert ("vllm.all2all.batched_tokens" in codes) == (c["engine_args"].get("max_num_batched_tokens") is None)


@pytest.mark.parametrize("c", FIXTURE["deepep"], ids=lambda c: f"{c['all2all_backend']}-{c['VLLM_DEEPEP_BUFFER_SIZE_MB']}-"
                         f"{'internode' if c['internode'] else 'intranode'}")
def test_deepep_buffer_is_what_vllm_asks_for(c):
    opts = VLLMOptions(data_parallel_size=2, enable_expert_parallel=True, all2all_backend=c["all2all_backend"],
                       deepep_buffer_size_mb=c["VLLM_DEEPEP_BUFFER_SIZE_MB"], ep_internode=c["internode"])
    nvl, rdma = all2all.deepep_bytes(opts)
    assert nvl == c["num_nvl_bytes"]
    if c["num_rdma_bytes"] is None:  # low latency: DeepEP's own size hint, named as not sized
        assert rdma == 0
        (w,) = [m for m in all2all.messages(load("Qwen/Qwen3-30B-A3B"), opts) if m.code == "vllm.all2all.deepep_buffer"]
        assert "is not sized" in w.text
    else:
        assert rdma == c["num_rdma_bytes"]


def test_buffer_is_non_torch_inside_the_budget():
    spec, gpu = load("Qwen/Qwen3-30B-A3B"), find_gpu("h100-sxm")
    base = VLLMOptions(max_model_len=4096, data_parallel_size=2, enable_expert_parallel=True, max_num_batched_tokens=2048)
    a = check_vllm(spec, gpu, base).devices[0]
    for upd, extra in [({"all2all_backend": "deepep_high_throughput"}, 1024 * MIB),
                       ({"all2all_backend": "deepep_high_throughput", "ep_internode": True}, 2048 * MIB),
                       ({"all2all_backend": "deepep_high_throughput", "ep_internode": True,
                         "deepep_force_intra_node": True}, 1024 * MIB),
                       ({"all2all_backend": "deepep_low_latency", "deepep_buffer_size_mb": 256}, 256 * MIB),
                       ({"all2all_backend": "nixl_ep"}, 0), ({"all2all_backend": "pplx"}, 0)]:
        b = check_vllm(spec, gpu, base.model_copy(update=upd)).devices[0]
        assert b.non_torch_bytes - a.non_torch_bytes == extra, upd
        assert a.kv_cache_bytes - b.kv_cache_bytes == extra, upd
    # no all-to-all kernels: without expert parallelism, on one DP rank, or on a dense model
    for upd in ({"enable_expert_parallel": False}, {"data_parallel_size": 1}):
        o = base.model_copy(update={"all2all_backend": "deepep_high_throughput", **upd})
        assert all2all.buffer_bytes(spec, o) == 0
    assert all2all.buffer_bytes(load("Qwen/Qwen3-8B"), base.model_copy(update={"all2all_backend": "deepep_low_latency"})) == 0
    r = check_vllm(spec, gpu, base.model_copy(update={"all2all_backend": "nixl_ep"}))
    assert "vllm.all2all.unsized" in {w.code for w in r.warnings}
    ht = check_vllm(spec, gpu, base.model_copy(update={"all2all_backend": "deepep_high_throughput"}))
    (t,) = [t for t in ht.trace if t.name == "all-to-all buffer (each rank)"]
    assert t.value == 1024 * MIB and t.inputs["nvl_bytes"] == 1024 * MIB and t.inputs["rdma_bytes"] == 0
    assert ht.command.count("--all2all-backend deepep_high_throughput") == 1


def test_pasted_flags_and_variables_are_read_as_modelled():
    base = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 4096 -dp 2 --enable-expert-parallel"
    _, r = read_command(f"VLLM_DEEPEP_BUFFER_SIZE_MB=512 VLLM_DEEPEP_HIGH_THROUGHPUT_FORCE_INTRA_NODE=1 {base} "
                        "--all2all-backend deepep_high_throughput")
    assert r.options["all2all_backend"] == "deepep_high_throughput" and r.options["deepep_buffer_size_mb"] == 512
    assert r.options["deepep_force_intra_node"] is True and not r.warnings
    # across two machines the EP group spans them: high throughput adds the RDMA buffer
    out = check_command(f"VLLM_DEEPEP_BUFFER_SIZE_MB=512 {base} --all2all-backend deepep_high_throughput --nnodes 2",
                        "2x1xh100-sxm")
    (w,) = [w for w in out.result.warnings if w.code == "vllm.all2all.deepep_buffer"]
    assert "512 MiB" in w.text and "RDMA" in w.text
    assert "--all2all-backend deepep_high_throughput" in out.vramcalc_command
    assert "--deepep-buffer-size-mb 512" in out.vramcalc_command
    assert out.result.command.startswith("VLLM_DEEPEP_BUFFER_SIZE_MB=512 vllm serve ")
    same_node = check_command(f"VLLM_DEEPEP_BUFFER_SIZE_MB=512 {base} --all2all-backend deepep_high_throughput",
                              "2xh100-sxm")
    assert out.result.devices[0].non_torch_bytes - same_node.result.devices[0].non_torch_bytes == 512 * MIB
    one = check_command(f"{base} --all2all-backend deepep_high_throughput", "2xh100-sxm")
    assert one.result.devices[0].non_torch_bytes - check_command(base, "2xh100-sxm").result.devices[0].non_torch_bytes \
        == 1024 * MIB
    ll = check_command(f"{base} --all2all-backend deepep_low_latency", "2xh100-sxm")
    assert ll.result.layout.max_num_batched_tokens == 256


def test_cli_flags(capsys):
    rc = main(["check", "Qwen/Qwen3-30B-A3B", "--gpu", "2xh100-sxm", "--engine", "vllm", "--max-model-len", "4096",
               "--data-parallel-size", "2", "--enable-expert-parallel", "--all2all-backend", "deepep_low_latency",
               "--deepep-buffer-size-mb", "256", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    text = json.dumps(out)
    assert "vllm.all2all.deepep_buffer" in text and "256 MiB" in text and "vllm.all2all.batched_tokens" in text


def test_the_options_defaults_are_vllm_s():
    """VLLMOptions' literal defaults equal vLLM 0.33.0's, as data/vllm_features.json records them (vllm/envs.py
    VLLM_DEEPEP_BUFFER_SIZE_MB; vllm/config/mamba.py replayssm_buffer_len)."""
    from vramcalc.vllm.features import features

    opts = VLLMOptions()
    assert opts.deepep_buffer_size_mb == features().all2all.deepep_buffer_mib_default
    assert opts.replayssm_buffer_len == features().replayssm.default_buffer_len
