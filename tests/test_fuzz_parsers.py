"""Fuzzing the parsers (hypothesis): the only outcomes allowed are a result or our own error."""

import json
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DATA, catalog_config
from vramcalc.errors import VramcalcError
from vramcalc.params import count_params
from vramcalc.sources.gguf_header import GGUFHeader
from vramcalc.sources.gguf_header import read_header as read_gguf
from vramcalc.spec import ModelSpec
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.sources.safetensors_header import SafetensorsHeader, parse_header, read_header_from

# 150 examples per parser in the suite; benchmarks/fuzz_parsers.py runs many more.
FUZZ = settings(max_examples=int(os.environ.get("VRAMCALC_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow], derandomize=False)
VALID_GGUF = None


def _valid_gguf() -> bytes:
    global VALID_GGUF
    if VALID_GGUF is None:
        import tempfile
        from pathlib import Path

        from test_gguf_reader import write_gguf
        from vramcalc.sources.hf_config import read_config_file

        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "m.gguf"
            write_gguf(read_config_file(DATA / "checkpoints" / "llama"), "Q8_0", p, "llama")
            VALID_GGUF = p.read_bytes()
    return VALID_GGUF


def _gguf(data: bytes):
    return read_gguf(lambda off, n: data[off:off + n], "fuzz.gguf", len(data))[0]


def outcome(fn, *args):
    """The parser's result or our own error; any other exception propagates and fails the test."""
    try:
        return fn(*args)
    except VramcalcError as e:
        return e


@FUZZ
@given(st.binary(max_size=512))
def test_gguf_random_bytes(data):
    assert isinstance(outcome(_gguf, b"GGUF" + data), (GGUFHeader, VramcalcError))


@FUZZ
@given(st.data())
def test_gguf_mutated_real_header(draw):
    data = bytearray(_valid_gguf()[:4096])
    for _ in range(draw.draw(st.integers(1, 8))):
        i = draw.draw(st.integers(0, len(data) - 1))
        data[i] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(data)))
    assert isinstance(outcome(_gguf, bytes(data[:cut])), (GGUFHeader, VramcalcError))


@FUZZ
@given(st.binary(max_size=256))
def test_safetensors_random_bytes(data):
    import io
    r = outcome(read_header_from, io.BytesIO(struct.pack("<Q", len(data)) + data), "fuzz.safetensors",
                8 + len(data) + 64)
    assert isinstance(r, (SafetensorsHeader, VramcalcError))


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                           max_leaves=12)


@FUZZ
@given(st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "x"]), json_values, max_size=4))
def test_safetensors_header_entries(entry):
    r = outcome(parse_header, json.dumps({"t": entry}).encode(), "fuzz.safetensors", 10**6)
    assert isinstance(r, (SafetensorsHeader, VramcalcError))


BASES = ["meta-llama__Llama-3.1-8B", "deepseek-ai__DeepSeek-V3", "Qwen__Qwen3-Next-80B-A3B-Thinking",
         "google__gemma-3-4b-it", "openai__gpt-oss-20b", "mistralai__Mamba-Codestral-7B-v0.1", "Zyphra__Zamba2-7B",
         "nvidia__Nemotron-H-8B-Base-8K", "meta-llama__Llama-4-Scout-17B-16E-Instruct"]


@FUZZ
@given(st.sampled_from(BASES), st.data())
def test_config_with_fields_replaced_or_removed(base, draw):
    cfg = json.loads(json.dumps(catalog_config(base)))
    target = cfg.get("text_config", cfg) if draw.draw(st.booleans()) else cfg
    keys = sorted(target)
    for _ in range(draw.draw(st.integers(1, 4))):
        key = draw.draw(st.sampled_from(keys))
        if draw.draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw.draw(json_values)
    spec = outcome(lambda: spec_from_config(cfg, model_id="fuzz", source="fuzz"))
    assert isinstance(spec, (ModelSpec, VramcalcError))
    if isinstance(spec, ModelSpec):  # a spec that reads must also count
        assert count_params(spec).total > 0


CLI_TOKENS = ["check", "models", "gpus", "schema", "check-vllm", "llama-3.1-8b", "qwen3-next-80b-a3b-thinking",
              "gpt-oss-20b", "deepseek-v3", "nope/model", "--gpu", "4090", "2x4090", "h100", "cpu", "m4-max(64GiB)",
              "4090-30GiB", "3x3090", "--engine", "vllm", "llamacpp", "none", "--tp", "--pp", "3", "0", "-1", "8",
              "--ctx", "1", "999999999", "--quant", "awq", "gguf:Q4_K_M", "gguf:Q9", "fp8", "--json",
              "--sequences", "--max-model-len", "--kv-cache-dtype", "fp8", "-ctv", "q8_0", "-fa", "off", "-ngl",
              "--cpu-moe", "--ram", "1.5", "--engine-version", "0.11.0", "9.9.9", "x.y", "--gpu-memory-utilization",
              "1.5", "0.5"]


@settings(max_examples=int(os.environ.get("VRAMCALC_FUZZ_EXAMPLES", "150")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(CLI_TOKENS), min_size=1, max_size=9))
def test_cli_arguments_end_in_an_exit_code_never_a_traceback(argv):
    import contextlib
    import io

    from vramcalc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own exit for bad usage
            code = e.code
    assert code in (0, 1, 2), (argv, code, err.getvalue()[-500:])
    assert "Traceback" not in err.getvalue()


def test_coverage_guided_fuzzing_of_the_binary_headers():
    """atheris (libFuzzer) on the GGUF and safetensors header parsers and the config.json reader,
    bounded here to 2,000 executions each (safetensors, the cheapest, 20,000); benchmarks/fuzz_atheris.py runs them
    for minutes."""
    import importlib.util
    import sys
    from pathlib import Path

    if importlib.util.find_spec("atheris") is None:  # the test extra installs it where it has wheels
        import pytest

        pytest.skip("atheris is not installed")
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from fuzz_atheris import run

    for target, runs in (("gguf", 2000), ("safetensors", 20000), ("config", 2000)):
        r = run(target, [f"-runs={runs}", "-max_len=65536", "-timeout=10", "-seed=1"])
        assert r["exit"] == 0, r["tail"]
        assert r["runs"] >= runs  # it really ran


@FUZZ
@given(st.one_of(st.text(alphabet="0123456789x:,()@-. GiBMBTsKkrtxhaHAm/", max_size=40),
                 st.lists(st.sampled_from(["2x", "4090", "3090", "h100", ":2", ",", "-1.5GiB", "24GiB", "@1000GB/s",
                                           "m4-max", "(64GiB)", "8x", "x", "0", "99999999999", "cpu", " "]),
                          max_size=8).map("".join)))
def test_system_strings(text):
    from vramcalc.systems import System, parse_system

    assert isinstance(outcome(parse_system, text), (System, VramcalcError))


# ---------------------------------------------------------------- the validators: nasty numbers in every field
# Signs, zeros, huge and fractional values, wrong types and nesting, in the fields memory is sized
# from. The outcome is a spec whose plain check has no negative term, or vramcalc's own error.

nasty_numbers = st.one_of(
    st.integers(-4, 4), st.integers(-2**64, 2**64), st.sampled_from([2**17, 2**20, 2**24, 2**31, 2**63, -2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 4096.0, -1.0, 1e30]), st.booleans(),
    st.none(), st.text(max_size=4), st.sampled_from(["8", "-1", "4096"]),
    st.lists(st.integers(-2, 64), max_size=5), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
VALIDATED = settings(max_examples=int(os.environ.get("VRAMCALC_FUZZ_EXAMPLES", "150")), deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CONFIG_FIELDS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                 "intermediate_size", "vocab_size", "max_position_embeddings", "sliding_window", "num_local_experts",
                 "num_experts", "num_experts_per_tok", "moe_intermediate_size", "n_routed_experts", "kv_lora_rank",
                 "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "layer_types", "mamba_d_state",
                 "ssm_state_size", "state_size", "conv_kernel", "mamba_num_heads", "mamba_head_dim", "n_groups",
                 "num_heads", "expand", "linear_num_key_heads", "linear_key_head_dim", "global_head_dim",
                 "num_global_key_value_heads", "first_k_dense_replace", "full_attention_interval", "vision_config",
                 "text_config", "torch_dtype", "rope_scaling", "rope_parameters", "sliding_window_pattern",
                 "moe_layer_freq", "no_rope_layer_interval", "decoder_sparse_step", "interleave_moe_layer_step",
                 "num_kv_shared_layers", "n_shared_experts", "mamba_expand", "mamba_n_groups", "mamba_d_conv"]
QUANT_CONFIGS = [{"quant_method": "gptq", "bits": 4, "group_size": 128}, {"quant_method": "awq", "bits": 4},
                 {"quant_method": "fp8", "weight_block_size": [128, 128]},
                 {"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 4}}}},
                 {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}]


def _plain_check_has_no_negative_term(spec: ModelSpec) -> None:
    from test_no_negative_terms import assert_no_negative
    from vramcalc.check import check
    from vramcalc.gpus import find_gpu

    r = outcome(check, spec, find_gpu("rtx4090"), 4096)
    if not isinstance(r, VramcalcError):  # a spec that reads must also size
        assert_no_negative(r, spec.id)
        assert r.weights_bytes > 0 and r.kv_bytes >= 0 and r.state_bytes >= 0


@VALIDATED
@given(st.sampled_from(BASES), st.data())
def test_config_numbers_reach_the_validators(base, draw):
    cfg = json.loads(json.dumps(catalog_config(base)))
    target = cfg.get("text_config", cfg) if draw.draw(st.booleans()) else cfg
    for _ in range(draw.draw(st.integers(1, 4))):
        key = draw.draw(st.sampled_from(CONFIG_FIELDS))
        target[key] = draw.draw(nasty_numbers)
        if draw.draw(st.integers(0, 5)) == 0:  # some fallbacks (layer periods) apply only without layer_types
            target.pop("layer_types", None)
        if key.startswith("rope_") and draw.draw(st.booleans()):
            target[key] = {"rope_type": "default", "partial_rotary_factor": draw.draw(nasty_numbers)}
    spec = outcome(lambda: spec_from_config(cfg, model_id="fuzz", source="fuzz"))
    assert isinstance(spec, (ModelSpec, VramcalcError)), spec
    if isinstance(spec, ModelSpec):
        _plain_check_has_no_negative_term(spec)


@VALIDATED
@given(st.sampled_from(QUANT_CONFIGS), st.data())
def test_quantization_config_numbers_reach_the_validators(qc, draw):
    qc = json.loads(json.dumps(qc))
    fields = ["bits", "group_size", "weight_block_size", "config_groups", "modules_to_not_convert", "quant_method"]
    for _ in range(draw.draw(st.integers(1, 3))):
        qc[draw.draw(st.sampled_from(fields))] = draw.draw(nasty_numbers)
    if isinstance(qc.get("config_groups"), dict) and draw.draw(st.booleans()):
        qc["config_groups"] = {"g": {"weights": {draw.draw(st.sampled_from(["num_bits", "group_size", "type"])):
                                                 draw.draw(nasty_numbers)}}}
    cfg = {**catalog_config("meta-llama__Llama-3.1-8B"), "quantization_config": qc}
    spec = outcome(lambda: spec_from_config(cfg, model_id="fuzz", source="fuzz"))
    assert isinstance(spec, (ModelSpec, VramcalcError)), spec
    if isinstance(spec, ModelSpec):
        _plain_check_has_no_negative_term(spec)


GGUF_KEYS = ["block_count", "attention.head_count", "attention.head_count_kv", "attention.key_length",
             "attention.value_length", "context_length", "feed_forward_length", "expert_count", "expert_used_count",
             "expert_feed_forward_length", "expert_shared_count", "leading_dense_block_count",
             "attention.sliding_window", "ssm.conv_kernel", "ssm.inner_size", "ssm.state_size", "ssm.time_step_rank",
             "ssm.group_count", "rope.dimension_count", "attention.kv_lora_rank", "attention.q_lora_rank",
             "attention.key_length_mla", "full_attention_interval"]
GGUF_ARCHS = {  # (arch, metadata of a small real-shaped model)
    "llama": {"block_count": 4, "attention.head_count": 8, "attention.head_count_kv": 2, "feed_forward_length": 1536,
              "context_length": 4096},
    "gemma3": {"block_count": 6, "attention.head_count": 8, "attention.head_count_kv": 4, "feed_forward_length": 1536,
               "attention.sliding_window": 512, "attention.key_length": 64, "attention.value_length": 64},
    "deepseek2": {"block_count": 3, "attention.head_count": 8, "attention.head_count_kv": 1, "feed_forward_length": 1536,
                  "rope.dimension_count": 64, "attention.key_length": 192, "attention.value_length": 128,
                  "attention.kv_lora_rank": 512, "attention.q_lora_rank": 768, "expert_count": 8,
                  "expert_used_count": 2, "expert_feed_forward_length": 256, "leading_dense_block_count": 1},
    "mamba2": {"block_count": 4, "ssm.conv_kernel": 4, "ssm.inner_size": 1024, "ssm.state_size": 128,
               "ssm.time_step_rank": 16, "ssm.group_count": 1},
    "nemotron_h": {"block_count": 4, "attention.head_count": 8, "attention.head_count_kv": [0, 2, 0, 0],
                   "feed_forward_length": [0, 0, 1536, 0], "ssm.conv_kernel": 4, "ssm.inner_size": 1024,
                   "ssm.state_size": 128, "ssm.time_step_rank": 16, "ssm.group_count": 1},
    "granitehybrid": {"block_count": 4, "attention.head_count": 8, "attention.head_count_kv": [0, 2, 0, 2],
                      "feed_forward_length": 1536, "ssm.conv_kernel": 4, "ssm.inner_size": 1024,
                      "ssm.state_size": 128, "ssm.time_step_rank": 16, "ssm.group_count": 1},
}


@VALIDATED
@given(st.sampled_from(sorted(GGUF_ARCHS)), st.data())
def test_gguf_metadata_reaches_the_validators(arch, draw):
    from vramcalc.sources.gguf_header import GGUFTensorInfo
    from vramcalc.sources.gguf_spec import spec_from_gguf

    md = {f"{arch}.{k}": v for k, v in GGUF_ARCHS[arch].items()}
    md["general.architecture"] = arch
    n = GGUF_ARCHS[arch]["block_count"]
    for _ in range(draw.draw(st.integers(1, 4))):
        key = draw.draw(st.sampled_from(GGUF_KEYS))
        per_layer = st.lists(nasty_numbers, min_size=n, max_size=n) if draw.draw(st.booleans()) else nasty_numbers
        md[f"{arch}.{key}"] = draw.draw(per_layer)
    hidden = draw.draw(st.sampled_from([512, 512, 0, 7, 2**18]))
    tensors = [GGUFTensorInfo(name="token_embd.weight", ne=(hidden, 1024), type="F16", offset=0, nbytes=0)]
    tensors += [GGUFTensorInfo(name=f"blk.{i}.ffn_gate_inp.weight", ne=(hidden, 8), type="F32", offset=0, nbytes=0)
                for i in range(n)]
    header = GGUFHeader(version=3, metadata=md, tensors=tensors, header_bytes=0)
    spec = outcome(lambda: spec_from_gguf(header, model_id="fuzz", source="gguf:fuzz", where="fuzz.gguf"))
    assert isinstance(spec, (ModelSpec, VramcalcError)), spec
    if isinstance(spec, ModelSpec):
        _plain_check_has_no_negative_term(spec)


def test_the_gguf_fuzz_bases_read():
    """The strategies start from valid files: each base builds a spec (so fuzzing reaches past the readers)."""
    from vramcalc.sources.gguf_header import GGUFTensorInfo
    from vramcalc.sources.gguf_spec import spec_from_gguf

    for arch, keys in GGUF_ARCHS.items():
        md = {f"{arch}.{k}": v for k, v in keys.items()} | {"general.architecture": arch}
        tensors = [GGUFTensorInfo(name="token_embd.weight", ne=(512, 1024), type="F16", offset=0, nbytes=0)]
        tensors += [GGUFTensorInfo(name=f"blk.{i}.ffn_gate_inp.weight", ne=(512, 8), type="F32", offset=0, nbytes=0)
                    for i in range(keys["block_count"])]
        spec = spec_from_gguf(GGUFHeader(version=3, metadata=md, tensors=tensors, header_bytes=0), model_id="m",
                              source="gguf:m", where="m.gguf")
        _plain_check_has_no_negative_term(spec)
