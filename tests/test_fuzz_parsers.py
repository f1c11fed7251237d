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
    """atheris (libFuzzer) on the GGUF and safetensors header parsers, bounded here to a few
    thousand executions each; benchmarks/fuzz_atheris.py runs them for minutes."""
    import importlib.util
    import sys
    from pathlib import Path

    if importlib.util.find_spec("atheris") is None:  # the test extra installs it where it has wheels
        import pytest

        pytest.skip("atheris is not installed")
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    from fuzz_atheris import run

    for target, runs in (("gguf", 3000), ("safetensors", 30000)):
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
