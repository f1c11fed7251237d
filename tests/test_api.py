"""One library call per question: vramcalc.check and vramcalc.plan give the CLI's --json answer."""

import json

import pytest

import vramcalc
from vramcalc.cli import main
from vramcalc.errors import InputError


def cli_json(capsys, *argv: str) -> dict:
    main([*argv, "--json"])
    return json.loads(capsys.readouterr().out)


CHECKS = [  # (library call, the same question on the command line)
    (dict(model="llama-3.1-8b", system="rtx4090", context=8192),
     ["check", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192"]),
    (dict(model="qwen3-32b", system="rtx4090", quant="awq", context=4096, sequences=2),
     ["check", "qwen3-32b", "--gpu", "rtx4090", "--quant", "awq", "--ctx", "4096", "--sequences", "2"]),
    (dict(model="qwen3-32b", system="2x4090", engine="vllm", quant="awq", context=8192),
     ["check", "qwen3-32b", "--gpu", "2x4090", "--engine", "vllm", "--quant", "awq", "--ctx", "8192"]),
    (dict(model="llama-3.1-8b", system="2x8xH100", engine="vllm", kv_cache_dtype="fp8", max_num_seqs=64),
     ["check", "llama-3.1-8b", "--gpu", "2x8xH100", "--engine", "vllm", "--kv-cache-dtype", "fp8",
      "--max-num-seqs", "64"]),
    (dict(model="llama-3.3-70b", system="rtx4090", engine="vllm", context=8192),  # does not start: alternatives
     ["check", "llama-3.3-70b", "--gpu", "rtx4090", "--engine", "vllm", "--ctx", "8192"]),
    (dict(model="llama-3.1-8b", system="2xh100", engine="vllm", tp=2, context=8192),
     ["check", "llama-3.1-8b", "--gpu", "2xh100", "--engine", "vllm", "--tp", "2", "--ctx", "8192"]),
    (dict(model="llama-3.1-8b", system="rtx4090", engine="llamacpp", quant="gguf:Q4_K_M", context=8192),
     ["check", "llama-3.1-8b", "--gpu", "rtx4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M", "--ctx", "8192"]),
    (dict(model="llama-3.1-8b", system="cpu", engine="llamacpp", quant="gguf:Q8_0", context=4096,
          host_ram_bytes=32 * 2**30),
     ["check", "llama-3.1-8b", "--gpu", "cpu", "--engine", "llamacpp", "--quant", "gguf:Q8_0", "--ctx", "4096",
      "--ram", "32"]),
    (dict(model="qwen3-32b", system="2x3090", engine="llamacpp", quant="gguf:Q4_K_M", context=16384, n_parallel=1,
          type_k="q8_0", type_v="q8_0"),
     ["check", "qwen3-32b", "--gpu", "2x3090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M", "--ctx", "16384",
      "-np", "1", "-ctk", "q8_0", "-ctv", "q8_0"]),
    (dict(model="llama-3.3-70b", system="rtx4070", engine="llamacpp", quant="gguf:Q4_K_M", context=8192),  # offload
     ["check", "llama-3.3-70b", "--gpu", "rtx4070", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M", "--ctx", "8192"]),
]


@pytest.mark.parametrize("call,argv", CHECKS, ids=[" ".join(a[1:]) for _, a in CHECKS])
def test_check_gives_the_clis_json(capsys, call, argv):
    result = vramcalc.check(**call)
    assert result.to_dict() == cli_json(capsys, *argv)


def test_the_engine_selects_the_result_type():
    assert isinstance(vramcalc.check("llama-3.1-8b", "rtx4090", context=4096), vramcalc.CheckResult)
    assert isinstance(vramcalc.check("llama-3.1-8b", "rtx4090", engine="vllm", context=4096), vramcalc.VLLMResult)
    assert isinstance(vramcalc.check("llama-3.1-8b", "rtx4090", engine="llamacpp", quant="gguf:Q4_K_M",
                                     context=4096), vramcalc.LlamaResult)


def test_todays_signature_still_works():
    spec = vramcalc.load_model("llama-3.1-8b")
    r = vramcalc.check(spec, "rtx4090", context=8192)
    assert r.fits and round(r.required_bytes / 2**30, 1) == 16.0
    assert vramcalc.check(spec, "rtx4090", context=8192, sequences=2).sequences == 2


def test_model_and_system_forms_give_the_same_answer():
    by_name = vramcalc.check("llama-3.1-8b", "2x4090", engine="vllm", context=8192).to_dict()
    spec = vramcalc.load_model("llama-3.1-8b")
    source = vramcalc.open_model("llama-3.1-8b")
    system = vramcalc.parse_system("2x4090")
    assert vramcalc.check(spec, system, engine="vllm", context=8192).to_dict() == by_name
    assert vramcalc.check(source, "2x4090", engine="vllm", max_model_len=8192).to_dict() == by_name
    gpu = vramcalc.find_gpu("rtx4090")
    assert (vramcalc.check(spec, gpu, context=8192).to_dict()
            == vramcalc.check("llama-3.1-8b", "rtx4090", context=8192).to_dict())


def test_a_system_string_in_the_vllm_check_sets_tp_and_pp():
    r = vramcalc.check("llama-3.1-8b", "2x8xH100", engine="vllm", context=8192)
    assert (r.layout.tp, r.layout.pp) == (8, 2)
    r = vramcalc.check("llama-3.1-8b", "4x4090", engine="vllm", pp=2, context=8192)
    assert (r.layout.tp, r.layout.pp) == (2, 2)


def test_plan_gives_the_clis_json(capsys):
    r = vramcalc.plan("llama-3.1-8b", "2x4090", context=16384, top=2)
    assert r.to_dict() == cli_json(capsys, "plan", "llama-3.1-8b", "--gpu", "2x4090", "--ctx", "16384", "--top", "2")
    spec = vramcalc.load_model("llama-3.1-8b")
    assert vramcalc.plan(spec, vramcalc.parse_system("2x4090"), context=16384, top=2).to_dict() == r.to_dict()


def one_line_input_error(call) -> str:
    with pytest.raises(InputError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("engine,bad,allowed", [
    (None, "max_model_len", "context, sequences, quant, revision"),
    ("vllm", "n_ctx", "max_model_len"),
    ("llamacpp", "max_model_len", "n_gpu_layers"),
])
def test_an_unknown_option_is_refused_with_the_allowed_ones(engine, bad, allowed):
    m = one_line_input_error(lambda: vramcalc.check("llama-3.1-8b", "rtx4090", engine=engine, **{bad: 1}))
    assert f"unknown option {bad}" in m and "allowed:" in m and allowed in m


def test_the_plan_refuses_an_unknown_option_and_a_bad_goal():
    m = one_line_input_error(lambda: vramcalc.plan("llama-3.1-8b", "rtx4090", ctx=8192))
    assert "unknown option ctx" in m and "context" in m
    m = one_line_input_error(lambda: vramcalc.plan("llama-3.1-8b", "rtx4090", goal="speed"))
    assert "'latency'" in m and "'throughput'" in m


@pytest.mark.parametrize("engine,options,named", [
    ("vllm", dict(kv_cache_dtype="fp4"), "'fp8'"),
    ("vllm", dict(tp=0), "tp"),
    ("llamacpp", dict(type_k="q5"), "q8_0"),
    ("llamacpp", dict(split_mode="rows"), "'layer'"),
    ("llamacpp", dict(quant="awq"), "gguf:Q4_K_M"),
    ("vllm", dict(context=4096, max_model_len=8192), "disagree"),
])
def test_an_invalid_value_is_refused_naming_what_it_accepts(engine, options, named):
    m = one_line_input_error(lambda: vramcalc.check("llama-3.1-8b", "rtx4090", engine=engine, **options))
    assert named in m


def test_the_options_models_refuse_unknown_fields():
    m = one_line_input_error(lambda: vramcalc.VLLMOptions(kv_dtype="fp8"))
    assert "unknown option kv_dtype" in m and "kv_cache_dtype" in m
    m = one_line_input_error(lambda: vramcalc.LlamaOptions(ctx=4096))
    assert "unknown option ctx" in m and "n_ctx" in m


def test_several_gpus_without_an_engine_and_cpu_without_llamacpp_are_refused():
    assert "engine='vllm'" in one_line_input_error(lambda: vramcalc.check("llama-3.1-8b", "2x4090"))
    assert "llamacpp" in one_line_input_error(lambda: vramcalc.check("llama-3.1-8b", "cpu", engine="vllm"))


def test_ngl_takes_auto_and_all_as_the_flag_does(capsys):
    r = vramcalc.check("llama-3.1-8b", "rtx4090", engine="llamacpp", quant="gguf:Q4_K_M", context=8192,
                       n_gpu_layers="all")
    assert r.to_dict() == cli_json(capsys, "check", "llama-3.1-8b", "--gpu", "rtx4090", "--engine", "llamacpp",
                                   "--quant", "gguf:Q4_K_M", "--ctx", "8192", "-ngl", "all")


def test_table_rows():
    plain = vramcalc.check("llama-3.1-8b", "rtx4090", context=8192)
    rows = plain.table()
    assert [r["name"] for r in rows] == [t.name for t in plain.breakdown]
    assert sum(r["bytes"] for r in rows) == plain.required_bytes
    assert {r["device"] for r in rows} == {plain.device.id}
    v = vramcalc.check("llama-3.1-8b", "2x4090", engine="vllm", context=8192)
    assert [r["rank"] for r in v.table()] == [0, 1] and all("kv_cache_bytes" in r for r in v.table())
    lc = vramcalc.check("llama-3.1-8b", "2x3090", engine="llamacpp", quant="gguf:Q4_K_M", context=8192)
    assert [r["device"] for r in lc.table()] == [d.device for d in lc.devices]
    p = vramcalc.plan("llama-3.1-8b", "2x4090", context=16384, top=2)
    assert [r["rank"] for r in p.table()] == [1, 2]
    assert p.table()[0]["layout"] == "TP=2" and p.table()[0]["command"].startswith("vllm serve")
    for rows in (plain.table(), v.table(), lc.table(), p.table()):  # flat: what a DataFrame takes as columns
        assert all(isinstance(x, (str, int, float, bool, type(None))) for r in rows for x in r.values())


def test_the_engine_functions_refuse_a_system_string_with_the_call_that_takes_it():
    from vramcalc.llamacpp.engine import check_llamacpp
    from vramcalc.vllm.engine import check_vllm

    spec = vramcalc.load_model("llama-3.1-8b")
    m = one_line_input_error(lambda: check_vllm(spec, "2x4090", vramcalc.VLLMOptions()))  # type: ignore[arg-type]
    assert "engine='vllm'" in m
    m = one_line_input_error(lambda: check_llamacpp(spec, "2x4090", vramcalc.LlamaOptions(ftype="Q4_K_M")))
    assert "engine='llamacpp'" in m


def test_the_package_docstring_example_runs():
    import doctest

    assert doctest.testmod(vramcalc).failed == 0


def test_one_gpu_is_not_several_in_the_library_either():
    with pytest.raises(InputError) as e:
        vramcalc.check("llama-3.1-8b", "4090", engine="vllm", tp=3)
    assert "needs 3 GPUs" in str(e.value) and "--gpu 3x4090" in str(e.value) and "\n" not in str(e.value)


def test_plan_takes_pins_and_refuses_unknown_ones():
    p = vramcalc.plan("qwen3.6-27b", "4x3090", pins={"quant": "gptq", "tp": 2}, engine="vllm")
    assert p.recommendations and all(r["tp"] == 2 and r["quant"] == "gptq" for r in p.table())
    with pytest.raises(vramcalc.InputError):
        vramcalc.plan("qwen3.6-27b", "4x3090", pins={"tensor_parallel": 2})


def test_a_bare_llama_cpp_file_type_reads_as_the_cli_reads_it():
    """quant="Q4_K_M" (issue 23 item 2): the library takes the file type without its gguf: prefix, as `--quant
    Q4_K_M` does, and gives the same result as the prefixed spelling."""
    bare = vramcalc.check("qwen3-8b", "rtx4090", engine="llamacpp", quant="Q4_K_M", context=8192)
    prefixed = vramcalc.check("qwen3-8b", "rtx4090", engine="llamacpp", quant="gguf:Q4_K_M", context=8192)
    assert bare.to_dict() == prefixed.to_dict()
    plain = vramcalc.check("qwen3-8b", "rtx4090", quant="q4_k_m", context=8192)
    assert plain.to_dict() == vramcalc.check("qwen3-8b", "rtx4090", quant="gguf:Q4_K_M", context=8192).to_dict()
    pinned = vramcalc.plan("qwen3-8b", "rtx4090", engine="llamacpp", pins={"quant": "Q4_K_M"})
    assert {c.quant for c in pinned.recommendations} == {"gguf:Q4_K_M"}
