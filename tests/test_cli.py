"""The `vramcalc` command: verdicts, JSON, exit codes 0 / 1 / 2, one-line errors."""

import json
import subprocess
import sys

import pytest

from conftest import CATALOG, catalog_config
from vramcalc.cli import main

GIB = 1024**3


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_llama_8b_on_4090_fits_with_the_exact_sum(capsys):
    code, out, _ = run(capsys, "check", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192", "--json")
    r = json.loads(out)
    assert code == 0 and r["fits"] is True
    assert r["model"]["id"] == "meta-llama/Llama-3.1-8B"
    assert r["model"]["params_total"] == r["model"]["params_active"] == 8_030_261_248
    # weights 8,030,261,248 x 2 B + KV 131,072 B x 8192 tokens
    assert r["required_bytes"] == 8_030_261_248 * 2 + 131_072 * 8192
    assert r["available_bytes"] == int(23.6 * GIB)  # what CUDA reports for a 4090, not the 24 GB on the box
    assert r["device"]["memory_bytes"] == 24 * GIB


def test_does_not_fit_exits_1(capsys):
    code, out, _ = run(capsys, "check", "llama-3.3-70b", "--gpu", "4090", "--ctx", "8192")
    assert code == 1 and "DOES NOT FIT" in out


def test_moe_json_reports_active_params(capsys):
    code, out, _ = run(capsys, "check", "qwen3-30b-a3b", "--gpu", "h100-sxm", "--ctx", "4096", "--json")
    r = json.loads(out)
    assert r["model"]["params_total"] == 30_532_122_624
    assert r["model"]["params_active"] < r["model"]["params_total"] / 5


def test_default_context_is_said(capsys):
    code, out, _ = run(capsys, "check", "llama-3.1-8b", "--gpu", "h100-sxm", "--json")
    r = json.loads(out)
    assert r["context"] == 131072 and "max_position_embeddings" in r["context_source"]


def test_sequences_multiply_kv_not_weights(capsys):
    _, one, _ = run(capsys, "check", "llama-3.1-8b", "--gpu", "h100-sxm", "--ctx", "4096", "--json")
    _, four, _ = run(capsys, "check", "llama-3.1-8b", "--gpu", "h100-sxm", "--ctx", "4096", "--sequences", "4",
                     "--json")
    one, four = json.loads(one), json.loads(four)
    assert four["weights_bytes"] == one["weights_bytes"] and four["kv_bytes"] == 4 * one["kv_bytes"]


@pytest.mark.parametrize("argv,needle", [
    (["check", "no-such-model", "--gpu", "4090"], "unknown model"),
    (["check", "qwen3-32", "--gpu", "4090"], "did you mean"),
    (["check", "llama-3.1-8b", "--gpu", "rtx9999"], "unknown GPU"),
    (["check", "llama-3.1-8b", "--gpu", "4090", "--ctx=-5"], "positive integer"),
    (["check", "llama-3.1-8b", "--gpu", "4090", "--ctx", "lots"], "positive integer"),
    (["check", "llama-3.1-8b"], "--gpu"),
    (["frobnicate"], "invalid choice"),
    # contradictory flags
    (["check", "llama-3.1-8b", "--gpu", "2x4090"], "several GPUs"),
    (["check", "llama-3.1-8b", "--gpu", "4090", "--engine", "llamacpp", "--quant", "fp8"], "llama.cpp file type"),
    (["check", "llama-3.1-8b", "--gpu", "2x4090", "--engine", "llamacpp", "--quant", "gguf:Q4_K_M", "-ts", "1,1,1"],
     "3 proportions for 2 GPUs"),
    (["check", "llama-3.1-8b", "--gpu", "4090", "--engine", "vllm", "--gpu-memory-utilization", "1.5"],
     "--gpu-memory-utilization must be in (0, 1]"),
    (["check", "llama-3.1-8b", "--gpu", "4090", "--engine", "vllm", "--engine-version", "x.y"], "release number"),
    (["plan", "llama-3.1-8b", "--gpu", "4090", "--ctx", "0"], "positive integer"),
    # vLLM's docs: TP within a node, PP across nodes
    (["check", "llama-3.1-8b", "--gpu", "2x8xH100", "--engine", "vllm", "--tp", "16"], "keep TP within a node"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_malformed_local_config_names_file_and_field(tmp_path, capsys):
    cfg = {k: v for k, v in catalog_config("meta-llama__Llama-3.1-8B").items() if k != "num_hidden_layers"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    code, _, err = run(capsys, "check", str(tmp_path), "--gpu", "4090")
    assert code == 2 and str(tmp_path / "config.json") in err and "'num_hidden_layers'" in err
    assert len(err.strip().splitlines()) == 1


def test_local_folder_reads_like_the_catalog(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps(catalog_config("Qwen__Qwen2.5-7B")))
    _, out, _ = run(capsys, "check", str(tmp_path), "--gpu", "4090", "--ctx", "1000", "--json")
    assert json.loads(out)["model"]["params_total"] == 7_615_616_512


def test_models_lists_the_catalog_with_aliases(capsys):
    code, out, _ = run(capsys, "models", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(list(CATALOG.glob("*.json"))) >= 120
    by_id = {r["repo_id"]: r for r in rows}
    assert by_id["Qwen/Qwen3-32B-FP8"]["base_model"] == "Qwen/Qwen3-32B"
    assert "gemma-4-31b" in by_id["google/gemma-4-31B-it"]["aliases"]
    assert "qwen3-32b" in by_id["Qwen/Qwen3-32B"]["aliases"]
    assert "llama-3.3-70b" in by_id["meta-llama/Llama-3.3-70B-Instruct"]["aliases"]
    assert "gpt-oss-120b" in by_id["openai/gpt-oss-120b"]["aliases"]


def test_python_dash_m_entry_point_runs_offline():
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "vramcalc", "check", "qwen3-32b", "--gpu", "h100-sxm", "--ctx", "32768"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "WEIGHTS AND KV FIT" in p.stdout and "Qwen/Qwen3-32B" in p.stdout


def test_local_checkpoint_folder_uses_exact_header_bytes(capsys):
    from conftest import DATA
    folder = DATA / "checkpoints" / "qwen3_moe"
    _, out, _ = run(capsys, "check", str(folder), "--gpu", "4090", "--ctx", "100", "--json")
    r = json.loads(out)
    assert r["weights_bytes"] == 363_904  # the file's tensor bytes
    assert "file headers" in r["breakdown"][0]["detail"]


def test_local_gguf_file(tmp_path, capsys):
    from conftest import DATA
    from test_gguf_reader import write_gguf
    from vramcalc.gguf_mix import predict_gguf
    from vramcalc.sources.hf_config import read_config_file
    spec = read_config_file(DATA / "checkpoints" / "llama")
    write_gguf(spec, "Q8_0", tmp_path / "tiny-Q8_0.gguf", "llama")
    code, out, _ = run(capsys, "check", str(tmp_path / "tiny-Q8_0.gguf"), "--gpu", "4090", "--ctx", "64", "--json")
    r = json.loads(out)
    assert code == 0 and r["weights_bytes"] == predict_gguf(spec, "Q8_0").total_bytes
    assert r["model"]["source"].startswith("gguf:")


def test_quant_option_gguf_matches_the_predictor(capsys):
    from vramcalc.gguf_mix import predict_gguf
    from vramcalc.sources.catalog import load
    _, out, _ = run(capsys, "check", "llama-3.1-8b", "--gpu", "4090", "--ctx", "4096", "--quant", "gguf:Q4_K_M",
                    "--json")
    assert json.loads(out)["weights_bytes"] == predict_gguf(load("llama-3.1-8b"), "Q4_K_M").total_bytes


def test_quantized_checkpoint_is_weighed_in_its_format(capsys):
    # DeepSeek-V3 ships FP8 with 128x128 block scales: about 1 byte per weight, not 2
    _, out, _ = run(capsys, "check", "deepseek-v3", "--gpu", "h200-sxm", "--ctx", "4096", "--json")
    r = json.loads(out)
    assert 1.0 < r["weights_bytes"] / r["model"]["params_total"] < 1.01
    assert not any(w["code"] == "check.weights.unmodelled_format" for w in r["warnings"])


def test_unknown_quant_is_bad_input(capsys):
    code, _, err = run(capsys, "check", "llama-3.1-8b", "--gpu", "4090", "--quant", "q3")
    assert code == 2 and "unknown quantization" in err



def test_malformed_gguf_file_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 20)  # counts that point past the end
    assert main(["check", str(path), "--gpu", "4090"]) == 2
    err = capsys.readouterr().err
    assert "broken.gguf" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_an_internal_error_exits_3_with_one_line_not_as_bad_input(capsys, monkeypatch):
    import vramcalc.cli.check

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(vramcalc.cli.check, "check", broken)
    code, out, err = run(capsys, "check", "llama-3.1-8b", "--gpu", "4090")
    assert code == 3 and not out
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "internal error: ZeroDivisionError: division by zero" in err and "report" in err and "--debug" in err
    code, _, err = run(capsys, "--debug", "check", "llama-3.1-8b", "--gpu", "4090")
    assert code == 3 and "Traceback" in err and "ZeroDivisionError" in err


def test_a_value_error_inside_an_engine_is_a_bug_not_bad_input(capsys, monkeypatch):
    import vramcalc.vllm.engine

    def broken(*args, **kwargs):
        raise ValueError("an internal ValueError")

    monkeypatch.setattr(vramcalc.vllm.engine, "_batch_defaults", broken)
    code, _, err = run(capsys, "check", "llama-3.1-8b", "--gpu", "4090", "--engine", "vllm", "--ctx", "8192")
    assert code == 3 and "internal error: ValueError" in err


def test_bad_engine_option_is_bad_input_naming_the_flag(capsys):
    code, _, err = run(capsys, "check", "llama-3.1-8b", "--gpu", "4090", "--engine", "vllm", "--ctx", "8192",
                       "--gpu-memory-utilization", "1.5")
    assert code == 2 and err.startswith("vramcalc: error: --gpu-memory-utilization must be in (0, 1]")
    assert len(err.strip().splitlines()) == 1


def test_bare_command_prints_help_and_version_matches_the_package(capsys):
    import re
    from pathlib import Path

    import vramcalc

    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vramcalc") and "check" in out and "plan" in out
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    version = re.search(r'^version = "([^"]+)"', (Path(__file__).parent.parent / "pyproject.toml").read_text(), re.M)[1]
    assert capsys.readouterr().out.strip() == f"vramcalc {version}" == f"vramcalc {vramcalc.__version__}"
