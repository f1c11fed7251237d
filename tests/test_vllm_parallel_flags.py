"""vLLM data and expert parallelism (--data-parallel-size, --enable-expert-parallel), -O0 / --compilation-config and
--disable-chunked-prefill: the routed experts' split against vLLM 0.33.0's own code (tests/data/vllm_moe_parallel.json,
written by tools/vllm_moe_parallel_oracle.py), the rest against the release's rules as the tests name them."""

import json
from pathlib import Path

import pytest

import vramcalc
from vramcalc.api import model_source
from vramcalc.errors import InputError, NotModelledError
from vramcalc.params import inventory
from vramcalc.pasted_command import check_command, read_command
from vramcalc.vllm.weights import _rank_shape, moe_shards

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_moe_parallel.json").read_text())


@pytest.mark.parametrize("case", ORACLE["layouts"], ids=lambda c: f"tp{c['tp']}-dp{c['dp']}-ep{int(c['enable_expert_parallel'])}")
def test_experts_split_as_fused_moe_parallel_config(case):
    m = moe_shards(case["tp"], case["dp"], case["enable_expert_parallel"])
    tp, ep = (m.tp, m.ep) if m is not None else (case["tp"], 1)
    assert (tp, ep) == (case["moe_tp_size"], case["moe_ep_size"])


@pytest.mark.parametrize("case", [c for c in ORACLE["maps"] if c["experts"] == 128], ids=lambda c: f"ep{c['ep_size']}")
def test_each_rank_holds_the_experts_determine_expert_map_gives_the_first(case):
    spec = model_source("Qwen/Qwen3-30B-A3B").spec
    t = next(t for t in inventory(spec) if t.name.endswith("experts.down_proj"))
    assert t.shape[0] == case["experts"]
    shape = _rank_shape(t, spec, 1, spec.layers[0], moe_shards(1, case["ep_size"], True))
    # the first rank holds the most (one more on the first E mod EP ranks): every rank is sized as it
    assert shape == (max(case["local_experts"]), *t.shape[1:]) and case["local_experts"][0] == shape[0]


def test_expert_parallel_puts_whole_experts_on_each_rank_of_the_same_bytes():
    # 128 experts over 2 ranks: 64 whole experts each, or every expert's intermediate halved; the same bytes
    tp2 = vramcalc.check("Qwen/Qwen3-30B-A3B", "2xH100", engine="vllm", tp=2)
    ep = vramcalc.check("Qwen/Qwen3-30B-A3B", "2xH100", engine="vllm", tp=2, enable_expert_parallel=True)
    assert ep.devices[0].weights_bytes == tp2.devices[0].weights_bytes
    # DP 2 x TP 1: attention whole on each GPU, experts split over both
    dp = vramcalc.check("Qwen/Qwen3-30B-A3B", "2xH100", engine="vllm", data_parallel_size=2)
    assert dp.layout.replicas == 2 and dp.layout.tp == 1 and len(dp.devices) == 1
    assert tp2.devices[0].weights_bytes < dp.devices[0].weights_bytes < tp2.devices[0].weights_bytes * 2


def test_data_parallel_on_a_dense_model_is_replicas():
    one = vramcalc.check("Qwen/Qwen3-8B", "4090", engine="vllm", max_model_len=8192)
    two = vramcalc.check("Qwen/Qwen3-8B", "2x4090", engine="vllm", max_model_len=8192, data_parallel_size=2)
    assert two.devices == one.devices and two.layout.replicas == 2
    with pytest.raises(InputError, match="does not divide the system's 2 GPUs"):
        vramcalc.check("Qwen/Qwen3-8B", "2x4090", engine="vllm", data_parallel_size=3)


def test_nnodes_must_be_the_systems_machines():
    with pytest.raises(InputError, match=r"--nnodes 2: give every machine in --gpu, e.g. --gpu 2x8xh100"):
        check_command("vllm serve Qwen/Qwen3-8B -tp 8 -pp 2 --nnodes 2", "16xH100")


def test_o0_and_cudagraph_mode_none_are_enforce_eager():
    # vllm/config/vllm.py OPTIMIZATION_LEVEL_00 and VllmConfig.__post_init__ (enforce_eager: the same two modes)
    for cmd in ("vllm serve Qwen/Qwen3-8B -O0", "vllm serve Qwen/Qwen3-8B --optimization-level O0",
                "vllm serve Qwen/Qwen3-8B -cc.cudagraph_mode=NONE",
                "vllm serve Qwen/Qwen3-8B --compilation-config '{\"cudagraph_mode\": \"NONE\", \"mode\": 0}'"):
        assert read_command(cmd)[1].options == {"enforce_eager": True}, cmd
    assert read_command("vllm serve Qwen/Qwen3-8B -O3")[1].options == {}  # O2's settings
    with pytest.raises(NotModelledError, match="piecewise"):
        read_command("vllm serve Qwen/Qwen3-8B -O1")
    # a compilation-config key vramcalc models is read as its option (the capture sizes: test_vllm_releases.py)
    assert read_command("vllm serve Qwen/Qwen3-8B -cc.cudagraph_capture_sizes='[1,2]'")[1].options == {
        "cudagraph_capture_sizes": (1, 2)}


def test_disable_chunked_prefill_batches_a_whole_prompt():
    r = vramcalc.check("Qwen/Qwen3-8B", "H100", engine="vllm", max_model_len=32768, enable_chunked_prefill=False)
    assert r.layout.max_num_batched_tokens == 32768  # max(max_model_len, the default 8192 on an H100)
    short = vramcalc.check("Qwen/Qwen3-8B", "H100", engine="vllm", max_model_len=32768, enable_chunked_prefill=False,
                           max_num_batched_tokens=8192)
    assert not short.fits and [e.code for e in short.errors] == ["vllm.scheduler.unchunked_batch"]
    assert "max_num_batched_tokens (8192) is smaller than max_model_len (32768)" in short.errors[0].text
