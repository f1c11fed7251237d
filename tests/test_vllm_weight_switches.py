"""--dcp-q-replicate / VLLM_DCP_Q_REPLICATE and VLLM_REPLICATE_EMBED, the switches that change how vLLM shards a
layer, against vLLM 0.33.0's own model classes built on the meta device on a CPU machine
(tests/data/vllm_weight_env_oracle_v0.33.0.json, tools/vllm_weight_env_oracle.py): the bytes of rank 0, and what
each switch adds, to the byte."""

import json
import os
import shlex

import pytest

from vramcalc.cli import main
from vramcalc.gpus import find_gpu
from vramcalc.pasted_command import check_command, read_command
from vramcalc.quant import QuantScheme
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.weights import sharding_switches, weights_per_rank

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_weight_env_oracle_v0.33.0.json")))
# the sharding switches' cases (the --model-impl rows are checked at the end, as a modelled flag)
CASES = [c for c in FIXTURE["cases"] if "model_impl" not in c["engine_args"]]


def _id(c):
    return f"{c['catalog']}-tp{c['tp']}-{json.dumps(c['engine_args'], sort_keys=True)}-{json.dumps(c['env'])}"


def _switches(c):
    """The options a `vllm serve` command with the case's flags and variables gives vramcalc."""
    args, env = c["engine_args"], c["env"]
    qrep = bool(int(env["VLLM_DCP_Q_REPLICATE"])) if "VLLM_DCP_Q_REPLICATE" in env else \
        bool(args.get("dcp_q_replicate"))
    embed = env.get("VLLM_REPLICATE_EMBED", "0").strip().lower() in ("1", "true")
    return args.get("decode_context_parallel_size", 1), qrep, embed


def _ours(c, spec, scheme=None):
    dcp, qrep, embed = _switches(c)
    q_group, rep = sharding_switches(spec, c["tp"], dcp, qrep, embed)
    return weights_per_rank(spec, c["tp"], 1, scheme, q_group=q_group, replicate_embed=rep, version="0.33.0")[0].bytes


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0"
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"] and "tools/vllm_weight_env_oracle.py" in FIXTURE["produced_by"]
    assert not [c for c in CASES if "error" in c] and len(CASES) >= 24


@pytest.mark.parametrize("c", CASES, ids=_id)
def test_rank0_bytes_equal_vllm(c):
    """The bytes of rank 0: the checkpoint's own (bf16 DeepSeek-V2-Lite) or, for the FP8 checkpoints the CPU build
    cannot pick kernels for, the unquantized model vLLM built in their place (built_unquantized): the parameters
    within 0.01 %, the rotary caches (DeepSeek-V3.2's CUDA class holds two 20 MiB cos/sin caches, the attention's and
    its indexer's) within the 1 KiB of vLLM's other small buffers, and the whole within 0.0001 %."""
    spec = load(c["model"])
    scheme = QuantScheme(method="none") if c["built_unquantized"] else None
    dcp, qrep, embed = _switches(c)
    q_group, rep = sharding_switches(spec, c["tp"], dcp, qrep, embed)
    w = weights_per_rank(spec, c["tp"], 1, scheme, q_group=q_group, replicate_embed=rep, version="0.33.0")[0]
    assert abs(w.bytes - w.rotary_cache_bytes - c["built_bytes_rank0"]) <= 1e-4 * c["built_bytes_rank0"]
    assert 0 <= c["built_buffer_bytes_rank0"] - w.rotary_cache_bytes <= 1024, (w.rotary_cache_bytes, c)
    theirs = c["built_bytes_rank0"] + c["built_buffer_bytes_rank0"]
    assert abs(w.bytes - theirs) <= 1e-6 * theirs, (w.bytes, theirs)


def _plain(c):
    """The case of the same model and TP without the switch (the baseline vLLM built)."""
    dcp = c["engine_args"].get("decode_context_parallel_size", 1)
    for o in CASES:
        if o["catalog"] == c["catalog"] and o["tp"] == c["tp"] and o["env"] == {} and \
                o["engine_args"] == ({"decode_context_parallel_size": dcp} if dcp > 1 else {}) and \
                o["cuda_class"] == c["cuda_class"]:
            return o
    return None


@pytest.mark.parametrize("c", [c for c in CASES if _plain(c) is not None and _plain(c) is not c], ids=_id)
def test_what_the_switch_adds_equals_vllm_to_the_byte(c):
    """What --dcp-q-replicate (the query projection whole within each DCP group) or VLLM_REPLICATE_EMBED (the whole
    embedding on every rank) adds to rank 0, as vLLM's classes build it; nothing where vLLM's class does not read it
    (VLLM_DCP_Q_REPLICATE=0 set beside the flag, no DCP, the generic DeepSeek-V3 class, TP 1)."""
    p = _plain(c)
    spec = load(c["model"])
    scheme = QuantScheme(method="none") if c["built_unquantized"] else None
    theirs = c["built_bytes_rank0"] - p["built_bytes_rank0"]
    assert _ours(c, spec, scheme) - _ours(p, spec, scheme) == theirs
    for name, shape in c["shapes"].items():
        if name in p["shapes"] and shape != p["shapes"][name]:
            assert theirs > 0


def test_the_oracle_built_the_cuda_class_for_deepseek_v32():
    v32 = [c for c in CASES if c["catalog"] == "deepseek-ai__DeepSeek-V3.2"]
    assert v32 and all(c["model_class"].endswith("deepseek_v32.nvidia.model.DeepseekV32ForCausalLM") for c in v32)
    on = [c for c in v32 if c["env"] and c["tp"] == 8]
    assert on[0]["shapes"]["model.embed_tokens.weight"] == [129280, 7168]  # whole at TP 8


def _options(c, memory=2**34):
    dcp, qrep, embed = _switches(c)
    return VLLMOptions(tp=c["tp"], decode_context_parallel_size=dcp, dcp_q_replicate=qrep, replicate_embed=embed,
                       engine_version="0.33.0", kv_cache_memory_bytes=memory)


@pytest.mark.parametrize("c", [c for c in CASES if c["catalog"] in ("deepseek-ai__DeepSeek-V2-Lite",
                                                                    "deepseek-ai__DeepSeek-V3.2")
                               and _plain(c) not in (None, c)], ids=_id)  # each switched case against its baseline
def test_check_vllm_carries_the_switch_into_rank0_weights(c):
    """check_vllm's rank-0 weights on a CUDA GPU move by the same bytes as vLLM's built class (the checkpoint's own
    format: bf16 for DeepSeek-V2-Lite; DeepSeek-V3.2's FP8 leaves the bf16 embedding as it is)."""
    p = _plain(c)
    spec = load(c["model"])
    r = check_vllm(spec, find_gpu("h100-sxm"), _options(c))
    base = check_vllm(spec, find_gpu("h100-sxm"), _options(p))
    assert r.devices[0].weights_bytes - base.devices[0].weights_bytes == c["built_bytes_rank0"] - p["built_bytes_rank0"]


def test_replicated_embedding_is_cuda_only():
    """ROCm builds vllm/models/deepseek_v32/amd/model.py, whose embedding is vocab-parallel."""
    spec = load("deepseek-ai/DeepSeek-V3.2")
    assert sharding_switches(spec, 8, 1, False, True) == (1, True)
    assert sharding_switches(spec, 8, 1, False, True, rocm=True) == (1, False)
    assert sharding_switches(load("deepseek-ai/DeepSeek-V2-Lite"), 4, 2, True, False, mla_disabled=True) == (1, False)


def test_pasted_commands_read_the_flag_and_the_variables():
    base = "vllm serve deepseek-ai/DeepSeek-V2-Lite -tp 4 -dcp 2 --max-model-len 8192"
    assert read_command(f"{base} --dcp-q-replicate")[1].options["dcp_q_replicate"] is True
    assert read_command(f"{base} --dcp-q-replicate --no-dcp-q-replicate")[1].options["dcp_q_replicate"] is False
    assert read_command(f"VLLM_DCP_Q_REPLICATE=1 {base}")[1].options["dcp_q_replicate"] is True
    # set, the variable wins over the flag (vllm/model_executor/models/deepseek_v2.py envs.is_set)
    assert read_command(f"VLLM_DCP_Q_REPLICATE=0 {base} --dcp-q-replicate")[1].options["dcp_q_replicate"] is False
    assert read_command(f"VLLM_REPLICATE_EMBED=true {base}")[1].options["replicate_embed"] is True
    assert read_command(f"VLLM_REPLICATE_EMBED=yes {base}")[1].options["replicate_embed"] is False
    on, off = check_command(f"{base} --dcp-q-replicate", "4xh100"), check_command(base, "4xh100")
    (c,) = [c for c in CASES if c["catalog"] == "deepseek-ai__DeepSeek-V2-Lite" and c["tp"] == 4 and
            c["engine_args"] == {"decode_context_parallel_size": 2, "dcp_q_replicate": True} and not c["env"]]
    (p,) = [p for p in CASES if p["catalog"] == "deepseek-ai__DeepSeek-V2-Lite" and p["tp"] == 4 and
            p["engine_args"] == {"decode_context_parallel_size": 2} and not p["env"]]
    assert on.result.devices[0].weights_bytes - off.result.devices[0].weights_bytes == \
        c["built_bytes_rank0"] - p["built_bytes_rank0"]
    assert "--dcp-q-replicate" in on.result.command and "--dcp-q-replicate" in on.vramcalc_command
    assert main(shlex.split(on.vramcalc_command)[1:] + ["--json"]) == 0
    embed = check_command("VLLM_REPLICATE_EMBED=1 vllm serve deepseek-ai/DeepSeek-V3.2 -tp 8", "8xh200")
    assert embed.result.command.startswith("VLLM_REPLICATE_EMBED=1 vllm serve") and \
        "--replicate-embed" in embed.vramcalc_command


def _impl_pairs():
    out = []
    for c in FIXTURE["cases"]:
        if c["engine_args"].get("model_impl") == "transformers":
            (own,) = [o for o in FIXTURE["cases"] if o["catalog"] == c["catalog"] and o["tp"] == c["tp"]
                      and not o["engine_args"] and not o["env"]]
            out.append((c, own))
    return out


@pytest.mark.parametrize("pair", _impl_pairs(), ids=lambda p: _id(p[0]))
def test_model_impl_transformers_weights_equal_vllm(pair):
    """--model-impl transformers (modelled): vLLM's Transformers backend holds the parameters of the model's own vLLM
    class to the byte, and its buffers drop by vramcalc's rotary cache less transformers' inv_freq buffers, to the
    byte (weights.py transformers_rope_bytes; tests/test_vllm_model_impl.py checks more models)."""
    from vramcalc.pasted_command import flag_classes
    from vramcalc.vllm.weights import transformers_rope_bytes

    c, own = pair
    assert flag_classes()["vllm"]["--model-impl"]["class"] == "modelled"
    assert "Transformers" in c["model_class"]
    spec = load(c["model"])
    w = weights_per_rank(spec, c["tp"], 1, version="0.33.0", kv_colwise=True)[0]
    assert w.bytes - w.rotary_cache_bytes == c["built_bytes_rank0"] == own["built_bytes_rank0"]
    vllm_rope = weights_per_rank(spec, c["tp"], 1, version="0.33.0")[0].rotary_cache_bytes
    assert own["built_buffer_bytes_rank0"] - c["built_buffer_bytes_rank0"] == vllm_rope - transformers_rope_bytes(spec)
