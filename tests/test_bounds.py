"""Every input that scales the work is bounded (vramcalc/limits.py), memos are bounded by the size of what they
hold, every failure is one line naming the flag, field or file (also as JSON with --json), and llama.cpp without
--ram never gives an unqualified fit for a host of unknown RAM."""

import contextlib
import gc
import io
import json
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import catalog_config
from vramcalc.cli import main
from vramcalc.errors import ERROR_CODES, MAX_MESSAGE_CHARS, ErrorOutput, InputError, one_line
from vramcalc.limits import MAX_GPUS, MEMO_LAYERS

SCHEMA = Path(__file__).parent.parent / "docs" / "schema" / "error.json"


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse's exit for a command line that does not parse
            code = e.code
    return code, out.getvalue(), err.getvalue()


def one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vramcalc: error: "), err[-1000:]
    assert len(lines[0]) <= len("vramcalc: error: ") + MAX_MESSAGE_CHARS and "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- systems and flags


@pytest.mark.parametrize("gpu", ["1024x1024xH100", "1025xH100", "2x1024xH100", "65x16xh100", "1024xh100,h100",
                                 "9" * 500 + "xh100"], ids=lambda g: g[:20])
def test_a_system_beyond_the_gpu_limit_is_refused_at_once(gpu):
    t = time.perf_counter()
    code, _, err = run("check", "qwen3-32b", "--gpu", gpu, "--engine", "vllm")
    line = one_error_line(err)
    assert code == 2 and time.perf_counter() - t < 2
    assert f"{MAX_GPUS:,}" in line


def test_a_system_string_is_bounded_in_length():
    code, _, err = run("check", "qwen3-32b", "--gpu", "9" * 5000 + "xh100")
    assert code == 2 and "at most 1,000" in one_error_line(err)


def test_the_largest_system_is_planned_for():
    from vramcalc.systems import parse_system

    s = parse_system("2x8xH100")
    assert s.nodes * s.gpus_per_node == 16
    s = parse_system("4x256xh100-sxm")
    assert s.nodes * s.gpus_per_node == MAX_GPUS


@pytest.mark.parametrize("flag,value,limit", [
    ("--ctx", "16777217", "16,777,216"), ("--sequences", "4097", "4,096"), ("--tp", "1025", "1,024"),
    ("--pp", "5000", "1,024"), ("--max-num-seqs", "100000", "4,096"), ("--max-model-len", "99999999", "16,777,216"),
    ("--max-num-batched-tokens", "99999999", "16,777,216"), ("--block-size", "1000000", "65,536"),
    ("--parallel", "100000", "4,096"), ("--ubatch", "99999999", "16,777,216"),
    ("--batch-size", "99999999", "16,777,216"),
    ("--n-cpu-moe", "10000000", "1,000,000"), ("--ram", "1e30", "1,048,576"), ("--ram", "nan", "1,048,576"),
])
def test_every_flag_that_scales_the_work_has_a_named_limit(flag, value, limit):
    engine = "llamacpp" if flag in ("--parallel", "--ubatch", "--batch-size", "--n-cpu-moe", "--ram") else "vllm"
    code, _, err = run("check", "qwen3-30b-a3b", "--gpu", "h100", "--engine", engine, flag, value)
    line = one_error_line(err)
    assert code == 2 and flag in line and limit in line


def test_plan_flags_are_bounded():
    for flag, value in (("--concurrency", "5000"), ("--top", "100000"), ("--ctx", "99999999")):
        code, _, err = run("plan", "qwen3-32b", "--gpu", "h100", flag, value)
        assert code == 2 and flag in one_error_line(err)


def test_tp_times_pp_on_one_gpu_is_bounded_before_the_system_is_built():
    t = time.perf_counter()
    code, _, err = run("check", "qwen3-32b", "--gpu", "h100", "--engine", "vllm", "--tp", "1024", "--pp", "1024")
    assert code == 2 and f"{MAX_GPUS:,} GPUs" in one_error_line(err) and time.perf_counter() - t < 2


def test_n_cpu_moe_above_the_layer_count_means_every_layer_quickly_and_in_little_memory():
    args = ["check", "qwen3-30b-a3b", "--gpu", "rtx4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M",
            "--ctx", "4096", "--json", "--ram", "256"]
    _, every, _ = run(*args, "--n-cpu-moe", "48")  # the model's 48 layers
    tracemalloc.start()
    t = time.perf_counter()
    code, huge, _ = run(*args, "--n-cpu-moe", "100000")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert code in (0, 1) and time.perf_counter() - t < 30 and peak < 500 * 2**20
    a, b = json.loads(every), json.loads(huge)
    assert a["devices"] == b["devices"]


def test_n_cpu_moe_picks_the_tensors_of_llamas_per_layer_overrides():
    """common/arg.cpp --n-cpu-moe N: one override ^blk\\.i\\.ffn_(up|down|gate)_(ch|)exps per i < N."""
    import re

    from vramcalc.gguf_mix import plan_gguf
    from vramcalc.llamacpp.weights import model_buffers
    from vramcalc.sources import load_model

    spec = load_model("qwen3-30b-a3b")
    plan = plan_gguf(spec, "Q4_K_M")
    for n in (1, 7, 48):
        per_layer = [rf"^blk\.{i}\.ffn_(up|down|gate)_(ch|)exps" for i in range(n)]
        old = model_buffers(plan, spec.num_layers, 999, [1.0], cpu_overrides=per_layer)
        new = model_buffers(plan, spec.num_layers, 999, [1.0], cpu_moe_layers=n)
        assert old == new and re.compile(per_layer[0])


def test_ngl_above_the_layer_count_means_every_layer():
    base = ["check", "llama-3.1-8b", "--gpu", "rtx4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M",
            "--ctx", "4096", "--json"]
    outs = [json.loads(run(*base, "-ngl", n)[1]) for n in ("33", "999", "9" * 50, "all")]
    assert all(o["devices"] == outs[0]["devices"] and o["gpu_layers"] == 32 for o in outs)


# ---------------------------------------------------------------- regexes from files


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(a|a)*b", r"(.*){30}x", r"(\w+\.)*\w+!", r"(a)\1",
                                     r"(?P<x>a)(?P=x)", "a" * 1001, ".*" * 9 + "x", r"(", r"(a{1,2})*b"],
                         ids=lambda p: p[:20])
def test_an_unsafe_ignore_pattern_is_refused_fast(pattern):
    from vramcalc.quant import _ignore_regex

    t = time.perf_counter()
    with pytest.raises(InputError, match="ignore-list pattern") as e:
        _ignore_regex(("lm_head", "re:" + pattern))
    assert time.perf_counter() - t < 0.5 and "\n" not in str(e.value)


def test_an_exponential_ignore_pattern_in_a_config_file_is_one_line_exit_2(tmp_path):
    cfg = catalog_config("meta-llama__Llama-3.1-8B")
    cfg["quantization_config"] = {
        "quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
            "num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "symmetric": True}}},
        "ignore": ["lm_head", "re:(.*a){25}" + "b" * 30]}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    t = time.perf_counter()
    code, out, err = run("check", str(tmp_path / "config.json"), "--gpu", "h100", "--engine", "vllm", "--json")
    assert code == 2 and time.perf_counter() - t < 10
    assert "ignore-list pattern" in one_error_line(err)
    assert json.loads(out)["error"]["code"] == "input.bad_value"


@pytest.mark.parametrize("pattern", [r".*mlp\.(gate|up|gate_up|down)_proj.*", r".*self_attn.*", r".*shared_experts.*",
                                     r"model.layers.\d+.mlp.gate$", r".*lm_head", r"vision_tower.*",
                                     r"model\.layers\.[0-9]+\.(self_attn|mlp)\.(q|k|v)_proj", r"(?:model\.)?lm_head",
                                     r"(?i)LM_HEAD", r"(?P<n>\d+)\.mlp"])
def test_real_ignore_patterns_still_match(pattern):
    from vramcalc.quant import _ignore_regex

    rx = _ignore_regex(("re:" + pattern,))
    assert rx.pattern == f"(?:{pattern})" or pattern.startswith("(?i)")
    assert _ignore_regex(("re:(?i)LM_HEAD",)).match("lm_head")


def test_the_catalogs_ignore_patterns_all_pass():
    from vramcalc.quant import safe_pattern

    models = Path(__file__).parent.parent / "vramcalc" / "data" / "models"
    found = 0
    for f in models.glob("*.json"):
        q = (json.loads(f.read_text()).get("config") or {}).get("quantization_config") or {}
        for key in ("ignore", "modules_to_not_convert", "exclude_modules"):
            for p in q.get(key) or []:
                if isinstance(p, str) and p.startswith("re:"):
                    assert safe_pattern(p[3:]) == p[3:]
                    found += 1
    assert found


# ---------------------------------------------------------------- memos


def test_memos_keep_a_bounded_size_for_large_specs():
    """A library user checking distinct 5,000-layer specs: the memos keep the newest, not every one."""
    from vramcalc.check import check
    from vramcalc.gpus import find_gpu
    from vramcalc.sources import load_model

    base = load_model("llama-3.1-8b")
    gpu = find_gpu("h100-sxm")

    def big():
        return base.model_copy(update={"layers": tuple(base.layers[:1]) * 5_000})

    check(big(), gpu, context=4096)
    tracemalloc.start()
    try:
        check(big(), gpu, context=4096)
        gc.collect()
        one = tracemalloc.get_traced_memory()[0]
        check(big(), gpu, context=4096)
        gc.collect()
        two = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert two - one < 16 * 2**20, (one, two)  # before: every spec's inventory kept, ~30 MB each at 5,000


def test_memo_forgets_beyond_its_budget_and_keeps_the_newest():
    from vramcalc.memo import Memo

    m: Memo[int] = Memo(budget=100)
    for i in range(10):
        m.put(i, i, 30)
    assert len(m) == 3 and m.get(9) == 9 and m.get(0) is None and m.weight <= 100
    m.put("big", 1, 10 * MEMO_LAYERS)
    assert len(m) == 1 and m.get("big") == 1


# ---------------------------------------------------------------- messages


def test_options_refuse_invalid_values_at_construction_with_the_allowed_values():
    from vramcalc.llamacpp.engine import LlamaOptions
    from vramcalc.vllm.engine import VLLMOptions
    from vramcalc.vllm.kv import KV_DTYPES

    with pytest.raises(InputError) as e:
        VLLMOptions(kv_cache_dtype="fp4")
    assert "kv_cache_dtype" in str(e.value) and "'fp8_e5m2'" in str(e.value) and "fp4" in str(e.value)
    assert "\n" not in str(e.value)
    for d in KV_DTYPES:
        VLLMOptions(kv_cache_dtype=d)
    for bad in ({"n_parallel": 0}, {"n_ubatch": -1}, {"flash_attn": "maybe"}, {"n_cpu_moe": -1}):
        with pytest.raises(InputError, match=next(iter(bad))):
            LlamaOptions(**bad)
    with pytest.raises(ValueError):  # InputError is a ValueError, as pydantic's was
        VLLMOptions(tp=0)


def test_one_line_caps_the_length():
    text = "x\n" * 2_000_000
    line = one_line(text)
    assert len(line) == MAX_MESSAGE_CHARS and line.endswith("…") and "\n" not in line


def test_a_huge_argument_gives_a_short_line():
    code, _, err = run("check", "y" * 3_000_000, "--gpu", "h100")
    assert code == 2 and one_error_line(err)
    code, _, err = run("check", "llama-3.1-8b", "--gpu", "z" * 3_000_000)
    assert code == 2 and one_error_line(err)
    code, _, err = run("check", "llama-3.1-8b", "--gpu", "h100", "--ctx", "9" * 3_000_000)
    assert code == 2 and one_error_line(err)


def _validate(obj):
    """docs/schema/error.json, checked by its published text and by the model."""
    schema = json.loads(SCHEMA.read_text())
    detail = schema["$defs"]["ErrorDetail"]
    assert set(obj) == {"error"} and set(obj["error"]) == set(detail["required"])
    assert obj["error"]["code"] in detail["properties"]["code"]["enum"]
    assert obj["error"]["exit_code"] in detail["properties"]["exit_code"]["enum"]
    assert len(obj["error"]["message"]) <= detail["properties"]["message"]["maxLength"]
    ErrorOutput.model_validate(obj)


@pytest.mark.parametrize("argv,code", [
    (["check", "no-such-model", "--gpu", "h100"], "input.unknown_model"),
    (["check", "llama-3.1-8b", "--gpu", "no-such-gpu"], "input.unknown_gpu"),
    (["check", "llama-3.1-8b", "--gpu", "1024x1024xH100"], "input.unknown_gpu"),
    (["check", "llama-3.1-8b", "--gpu", "h100", "--bogus"], "input.usage"),
    (["check", "llama-3.1-8b", "--gpu", "h100", "--engine", "vllm", "--kv-cache-dtype", "fp4"], "input.usage"),
    (["check", "llama-3.1-8b", "--gpu", "2x4090"], "input.bad_value"),
    (["plan", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "0"], "input.usage"),
])
def test_json_failures_are_error_objects_valid_against_the_schema(argv, code):
    rc, out, err = run(*argv, "--json")
    obj = json.loads(out)
    _validate(obj)
    assert rc == 2 and obj["error"]["code"] == code and obj["error"]["exit_code"] == 2
    assert one_error_line(err).removeprefix("vramcalc: error: ") == obj["error"]["message"]


def test_an_internal_error_is_a_json_object_with_exit_3(monkeypatch):
    import vramcalc.cli.check as cli_check

    def boom(args):
        raise KeyError("1")

    monkeypatch.setattr(cli_check, "gather", boom)
    rc, out, err = run("check", "llama-3.1-8b", "--gpu", "h100", "--json")
    obj = json.loads(out)
    _validate(obj)
    assert rc == 3 and obj["error"] == {"code": "internal.error", "exit_code": 3, "message": obj["error"]["message"]}
    assert "KeyError" in obj["error"]["message"] and len(err.splitlines()) == 1


def test_a_bare_message_gets_context(monkeypatch):
    import vramcalc.cli.check as cli_check

    def bare(args):
        raise InputError(1)

    monkeypatch.setattr(cli_check, "gather", bare)
    rc, _, err = run("check", "llama-3.1-8b", "--gpu", "h100")
    assert rc == 2 and one_error_line(err) == "vramcalc: error: InputError: 1 (in `vramcalc check`)"


def test_error_codes_are_registered_and_the_schema_names_them():
    schema = json.loads(SCHEMA.read_text())
    assert set(schema["$defs"]["ErrorDetail"]["properties"]["code"]["enum"]) == set(ERROR_CODES)


# ---------------------------------------------------------------- llama.cpp without --ram


def test_llamacpp_without_ram_never_fits_unqualified_when_the_host_needs_much():
    args = ["check", "deepseek-v3", "--gpu", "rtx4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M",
            "--ctx", "16384"]
    code, out, _ = run(*args)
    verdict = next(line for line in out.splitlines() if line.startswith("verdict"))
    assert code == 1 and "GPUS FIT; host RAM not checked: needs" in verdict and "pass --ram" in verdict
    code, out, _ = run(*args, "--json")
    r = json.loads(out)
    assert code == 1 and r["fits"] is False and "llamacpp.host.ram_unchecked" in [e["code"] for e in r["errors"]]
    code, out, _ = run(*args, "--ram", "1024")  # the host named: checked against it
    assert code == 0 and "verdict FITS\n" in out


def test_llamacpp_cpu_only_without_ram():
    big = ["check", "deepseek-v3", "--gpu", "cpu", "--engine", "llamacpp", "--quant", "gguf:Q8_0", "--ctx", "4096"]
    code, out, _ = run(*big)
    assert code == 1 and "verdict NOT CHECKED; host RAM not checked" in out
    small = ["check", "llama-3.1-8b", "--gpu", "cpu", "--engine", "llamacpp", "--quant", "gguf:Q8_0", "--ctx", "4096"]
    code, out, _ = run(*small)
    assert code == 0 and "verdict FITS; host RAM not checked: needs" in out


def test_llamacpp_without_ram_a_small_host_share_fits_with_the_qualification():
    code, out, _ = run("check", "llama-3.1-8b", "--gpu", "rtx4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M",
                       "--ctx", "8192")
    assert code == 0 and "verdict FITS ON THE GPUS; host RAM not checked: needs 0." in out


# ---------------------------------------------------------------- a sweep of hostile command lines


M = ["check", "qwen3-30b-a3b", "--gpu"]
L = ["--engine", "llamacpp", "--quant", "gguf:Q4_K_M"]
V = ["--engine", "vllm"]
HOSTILE = [
    [], ["check"], ["check", "qwen3-32b"], ["--json"], ["schema", "nope"], ["plan"],
    M + ["0xh100"], M + ["-1xh100"], M + ["h100:0"], M + ["h100:99999"], M + [","], M + [""], M + ["24GiB@0GB/s"],
    M + ["h100-99GiB"], M + ["m4-max(0GiB)"], M + ["h100(64GiB)"], M + ["1e9GiB"], M + ["h100", "--ctx", "0"],
    M + ["h100", "--ctx", "-5"], M + ["h100", "--ctx", "abc"], M + ["h100", "--ctx", "1kk"],
    M + ["h100", "--sequences", "0"],
    M + ["h100", "--quant", "nope"], M + ["h100", "--quant", "gguf:"], M + ["h100", "--engine", "nope"],
    M + ["h100"] + V + ["--tp", "3"], M + ["h100"] + V + ["--tp", "0"], M + ["h100"] + V + ["--pp", "9999"],
    M + ["h100"] + V + ["--gpu-memory-utilization", "nan"], M + ["h100"] + V + ["--gpu-memory-utilization", "-1"],
    M + ["h100"] + V + ["--gpu-memory-utilization", "inf"], M + ["h100"] + V + ["--engine-version", "1"],
    M + ["h100"] + V + ["--engine-version", "99.99.99"], M + ["h100"] + V + ["--engine-version", "x" * 10000],
    M + ["h100"] + V + ["--block-size", "3"], M + ["h100"] + V + ["--max-num-seqs", "4096"],
    M + ["h100"] + V + ["--dtype", "int3"], M + ["2x8xh100"] + V + ["--tp", "16"],
    M + ["h100"] + L + ["--parallel", "4096", "--ctx", "16777216"],
    M + ["h100"] + L + ["--main-gpu", "7", "-sm", "none"],
    M + ["h100"] + L + ["-ngl", "-1"], M + ["h100"] + L + ["-ngl", "lots"], M + ["h100"] + L + ["-ts", "0,0"],
    M + ["2xh100"] + L + ["-ts", "1,2,3"], M + ["h100"] + L + ["--ram", "0"], M + ["h100"] + L + ["--ram", "-3"],
    M + ["h100"] + L + ["--n-cpu-moe", "-1"], M + ["h100"] + L + ["--cache-type-k", "q9"],
    M + ["h100"] + L + ["--ubatch", "16777216", "--batch-size", "16777216"], M + ["h100", "--engine", "llamacpp"],
    M + ["cpu"] + L + ["--no-kv-offload", "--n-cpu-moe", "999999"],
    ["plan", "qwen3-30b-a3b", "--gpu", "h100", "--ram", "nan"],
    ["plan", "qwen3-30b-a3b", "--gpu", "h100", "--top", "0"],
    ["explain", "qwen3-30b-a3b", "--gpu", "h100"] + V + ["--tp", "1025"],
    ["gpus", "x" * 100000], ["models", "\x00"],
]


@pytest.mark.parametrize("argv", HOSTILE, ids=lambda a: one_line(" ".join(a), 60) or "(none)")
def test_hostile_command_lines_end_in_0_1_or_2_with_one_line(argv):
    code, out, err = run(*argv)
    assert code in (0, 1, 2), (argv, code, err[-500:])
    assert "Traceback" not in err and "Traceback" not in out
    if code == 2:
        one_error_line(err)
    code, out, err = run(*argv, "--json")
    if code == 2 and out.strip():
        _validate(json.loads(out))
