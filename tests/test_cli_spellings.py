"""Issue 23: the command people run, pasted: the engines' own spellings of vramcalc's flags."""

import json

import pytest

from vramcalc.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def dump(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code in (0, 1), err
    return json.loads(out)


LLAMA = ("check", "llama-3.1-8b", "--gpu", "rtx4070", "--engine", "llamacpp")


def test_llama_server_spellings_equal_vramcalcs_own(capsys):
    own = dump(capsys, *LLAMA, "--quant", "gguf:Q4_K_M", "--ctx", "16384", "--parallel", "2", "--no-kv-unified",
               "--n-gpu-layers", "all", "--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--flash-attn", "on",
               "--ubatch", "256", "--batch-size", "1024")
    for spelled in (("--quant", "Q4_K_M", "-c", "16384", "-np", "2", "--no-kv-unified", "-ngl", "99",
                     "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-ub", "256", "-b", "1024"),
                    ("--quant", "q4_k_m", "--ctx-size", "16384", "-np", "2", "--no-kv-unified", "--gpu-layers", "999",
                     "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-ub", "256", "-b", "1024")):
        assert dump(capsys, *LLAMA, *spelled) == own


def test_dash_c_is_llama_servers_total_context_over_the_slots(capsys):
    # llama-server -c 65536 -np 4 (split): 4 slots of 16,384 cells each
    r = dump(capsys, *LLAMA, "--quant", "Q4_K_M", "-c", "65536", "-np", "4", "--no-kv-unified")
    assert (r["n_ctx"], r["n_ctx_seq"], r["n_parallel"]) == (65536, 16384, 4)


def test_engine_llama_dot_cpp_and_llama_dash_cpp_are_llamacpp(capsys):
    own = dump(capsys, *LLAMA, "--quant", "gguf:Q4_K_M", "--ctx", "8192")
    for name in ("llama.cpp", "llama-cpp", "LlamaCpp"):
        assert dump(capsys, "check", "llama-3.1-8b", "--gpu", "rtx4070", "--engine", name, "--quant", "Q4_K_M",
                    "--ctx", "8192") == own


def test_gguf_file_type_without_prefix_without_engine(capsys):
    assert (dump(capsys, "check", "llama-3.1-8b", "--gpu", "4090", "--ctx", "8192", "--quant", "Q4_K_M")
            == dump(capsys, "check", "llama-3.1-8b", "--gpu", "4090", "--ctx", "8192", "--quant", "gguf:Q4_K_M"))


def test_nvfp4_stays_a_conversion_target_outside_llamacpp(capsys):
    r = dump(capsys, "check", "llama-3.1-8b", "--gpu", "b200", "--ctx", "8192", "--quant", "nvfp4")
    assert "gguf" not in json.dumps(r["breakdown"]).lower()


def test_vllm_spellings_equal_vramcalcs_own(capsys):
    base = ("check", "qwen3-32b", "--gpu", "2x4090", "--engine", "vllm", "--ctx", "8192")
    own = dump(capsys, *base, "--tp", "2")
    assert dump(capsys, *base, "-tp", "2") == dump(capsys, *base, "--tensor-parallel-size", "2") == own
    own_pp = dump(capsys, *base, "--pp", "2")
    assert dump(capsys, *base, "-pp", "2") == dump(capsys, *base, "--pipeline-parallel-size", "2") == own_pp


def test_plan_takes_dash_c_and_llama_dot_cpp(capsys):
    assert (dump(capsys, "plan", "llama-3.1-8b", "--gpu", "4090", "-c", "8192", "--engine", "llama.cpp", "--top", "1")
            == dump(capsys, "plan", "llama-3.1-8b", "--gpu", "4090", "--ctx", "8192", "--engine", "llamacpp", "--top", "1"))


@pytest.mark.parametrize("flag", ["--cont", "--seq", "--gpu-mem"])
def test_abbreviations_are_refused_not_matched(capsys, flag):
    with pytest.raises(SystemExit) as e:
        main(["check", "llama-3.1-8b", "--gpu", "4090", flag, "8192"])
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("argv, ranks", [(["--tp", "3"], 3), (["-tp", "2", "-pp", "2"], 4), (["--pp", "2"], 2)])
def test_one_gpu_is_not_turned_into_several(capsys, argv, ranks):
    code, _, err = run(capsys, "check", "qwen3-32b", "--gpu", "4090", "--engine", "vllm", *argv)
    line = err.strip()
    assert code == 2 and "\n" not in line
    assert f"needs {ranks} GPUs" in line and "'4090' is one GPU" in line and f"--gpu {ranks}x4090" in line


@pytest.mark.parametrize("argv, said", [
    (["--tp", "3"], "--tp is a vLLM option: add --engine vllm"),
    (["-ngl", "20"], "--n-gpu-layers is a llama.cpp option: add --engine llamacpp"),
    (["--concurrency", "8"], "--concurrency is read by the engine checks only: add --engine vllm or --engine llamacpp"),
    (["--ram", "64"], "--ram is read by the engine checks only"),
    (["--engine", "llamacpp", "--max-num-seqs", "8"],
     "--max-num-seqs is a vLLM option, which --engine llamacpp does not read"),
    (["--engine", "vllm", "-np", "4"], "--parallel is a llama.cpp option, which --engine vllm does not read"),
])
def test_an_option_no_engine_reads_is_refused_not_ignored(capsys, argv, said):
    """`--gpu 4090 --tp 3` without --engine used to weigh one GPU as if TP were never asked for."""
    code, _, err = run(capsys, "check", "llama-3.1-8b", "--gpu", "4090", *argv)
    assert code == 2 and said in err


def test_the_prefix_a_workload_shares_is_read_by_either_engine(capsys):
    r = dump(capsys, *LLAMA, "--quant", "Q4_K_M", "--ctx", "8192", "--concurrency", "2", "--shared-prefix", "512")
    assert r["speed"]["concurrency"] == 2


def test_host_ram_is_read_by_either_engine(capsys):
    """--ram sits with llama.cpp's options, but vLLM's check reads it too (its fix and alternatives search)."""
    r = dump(capsys, "check", "qwen3-8b", "--gpu", "h100", "--engine", "vllm", "--ram", "64", "--ctx", "8192")
    assert r["fits"]


def test_the_suggested_system_is_the_check_that_was_meant(capsys):
    r = dump(capsys, "check", "qwen3-32b", "--gpu", "2x4090", "--engine", "vllm", "--tp", "2", "--quant", "awq",
             "--ctx", "8192")
    assert r["layout"]["tp"] == 2 and len(r["devices"]) == 2


@pytest.mark.parametrize("text", ["strixhalo", "strix-halo", "Strix Halo", "STRIX_HALO"])
def test_gpus_find_a_chip_in_any_spelling(capsys, text):
    # the chip of three entries: the Ryzen AI Max+ 395, Max 390 and Max 385
    assert sorted(g["id"] for g in dump(capsys, "gpus", text)) == ["ryzen-ai-max-385", "ryzen-ai-max-390",
                                                                    "ryzen-ai-max-plus-395"]


def test_models_find_substrings_across_separators(capsys):
    ids = [e["repo_id"] for e in dump(capsys, "models", "gemma-4")]
    assert "nvidia/Gemma-4-31B-IT-NVFP4" in ids and all("gemma-4" in i.lower() for i in ids)
    assert [e["repo_id"] for e in dump(capsys, "models", "Gemma 4 31B")] == ["google/gemma-4-31B-it",
                                                                          "nvidia/Gemma-4-31B-IT-NVFP4"]


@pytest.mark.parametrize("argv, code, close", [(["gpus", "rtx9090"], "input.unknown_gpu", "rtx-4090"),
                                               (["models", "gema-5"], "input.unknown_model", "gemma-")])
def test_a_filter_that_matches_nothing_says_so_with_the_closest_names(capsys, argv, code, close):
    rc, _, err = run(capsys, *argv)
    line = err.strip()
    assert rc == 2 and "\n" not in line and "nothing matches" in line and "closest:" in line and close in line
    rc, out, _ = run(capsys, *argv, "--json")
    assert rc == 2 and json.loads(out)["error"]["code"] == code


@pytest.fixture
def q4_file(tmp_path):
    from llamacpp_models import write_gguf

    return str(write_gguf("llama-tied-q4k", tmp_path / "tiny-llama-Q4_K_M.gguf"))


def test_plan_on_a_gguf_file_keeps_the_files_own_types(capsys, q4_file):
    r = dump(capsys, "plan", q4_file, "--gpu", "4090", "--engine", "llama.cpp")
    recs = r["recommendations"]
    assert r["model"]["checkpoint"].startswith("GGUF file")
    assert recs and all(c["engine"] == "llamacpp" for c in recs)
    assert all(c["commands"][0].startswith(f"llama-server -m {q4_file} ") for c in recs)
    assert all("plan.note.gguf_file" in {n["code"] for n in c["notes"]} for c in recs)
    assert not any("IQ4_XS" in json.dumps(c) for c in recs)  # no other file types of a file the user has
    # the same buffers as `check --engine llamacpp` on the file
    ck = dump(capsys, "check", q4_file, "--gpu", "4090", "--engine", "llamacpp", "--ctx", str(recs[0]["context"]),
              "-np", "1", "-fa", "on")
    assert recs[0]["devices"][0]["used_bytes"] == ck["devices"][0]["total_bytes"]


def test_plan_on_a_gguf_file_offers_vllm_only_through_its_gguf_plugin(capsys, q4_file):
    r = dump(capsys, "plan", q4_file, "--gpu", "4090", "--engine", "vllm")
    recs = r["recommendations"]
    assert recs and {c["quant"] for c in recs} == {"checkpoint"}  # the file, not AWQ/FP8 conversions of it
    assert all("vllm.source.gguf_plugin" in {n["code"] for n in c["notes"]} for c in recs)


def test_llamacpp_refuses_a_conversion_target_naming_the_file_types(capsys):
    code, _, err = run(capsys, *LLAMA, "--quant", "awq", "--ctx", "8192")
    assert code == 2 and "Q4_K_M, Q8_0" in err


def test_a_gguf_files_type_comes_from_its_header(q4_file):
    from vramcalc.plan import gguf_file_type
    from vramcalc.sources import open_model

    spec = open_model(q4_file).spec
    assert gguf_file_type(spec) == "file"  # the test file's header does not say
    assert gguf_file_type(spec.model_copy(update={"quantization_config": {"quant_method": "gguf", "file_type": 15}})) == "Q4_K_M"


def test_the_library_plan_on_a_gguf_file_is_the_clis(capsys, q4_file):
    import vramcalc

    cli = dump(capsys, "plan", q4_file, "--gpu", "4090", "--engine", "llamacpp")
    lib = vramcalc.plan(q4_file, "4090", engine="llamacpp").to_dict()
    assert lib == cli and lib["recommendations"][0]["commands"][0].startswith(f"llama-server -m {q4_file} ")
