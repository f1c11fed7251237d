"""`vramcalc check MODEL --engine vllm|llamacpp` and vramcalc.check(engine=...) refused: the same re-checked smallest
fix as the pasted command (vramcalc/pasted_command.py _fix_tries, the one search both use), printed before the
planner's other layouts. The oracle is the engine model's re-check: the check with the fix's flag added starts, and
the pasted form of the same check names the same change (its tests pin the flags). No test reaches the network."""

import shlex

import pytest

import vramcalc
from vramcalc.cli import main
from vramcalc.pasted_command import check_command


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def cli(capsys, args: str) -> tuple[int, list[str]]:
    code = main(shlex.split(args))
    return code, capsys.readouterr().out.splitlines()


def flag_of(fix: str) -> str:
    """The flags of a fix line: `--max-num-seqs 128 (why)` -> `--max-num-seqs 128`."""
    return fix.split(" (")[0]


def same_as_pasted(capsys, plain: str, pasted: str, system: str) -> str:
    """The flag form's fix is the pasted form's, printed before any `instead` line; with the fix's flags added the
    flag form starts (the engine model's re-check) and its `run` line is the engine command with them."""
    code, out = cli(capsys, plain)
    assert code == 1
    (fix,) = [line.removeprefix("fix     ") for line in out if line.startswith("fix ")]
    (run,) = [line.removeprefix("run     ") for line in out if line.startswith("run ")]
    c = check_command(pasted, system)
    assert not c.fits and c.fix == fix and c.result.fix == fix
    at = [i for i, line in enumerate(out) if line.startswith(("fix ", "instead "))]
    assert out[at[0]].startswith("fix ")
    flags = flag_of(fix)
    assert run.endswith(flags) or all(part in run for part in flags.split(" -")[1:])
    code, again = cli(capsys, f"{plain} {flags}")
    assert code == 0, again
    assert check_command(c.corrected_command or "", system).fits
    return flags


V033 = "docker run --gpus all vllm/vllm-openai:v0.33.0"  # the release a pasted command names by its image tag


@pytest.mark.parametrize("release,pasted_as,fixed", [
    # 0.33: refused at the estimate; a shorter context with fewer sequences (as test_vllm_releases pins it)
    ("0.33.0", V033, "--max-model-len 5760 --max-num-seqs 32"),
    # 0.34 (the default): the extensible KV cache keeps vLLM's graph estimate free beside the captured graphs; fewer
    # sequences capture fewer graphs, and the context stays as asked
    (None, "vllm serve", "--max-num-seqs 8")])
def test_seed_70b_awq_tp2_plain_form_gets_the_pasted_fix(capsys, release, pasted_as, fixed):
    pin = f" --engine-version {release}" if release else ""
    flags = same_as_pasted(
        capsys, "check meta-llama/Llama-3.3-70B-Instruct --gpu 2x4090 --engine vllm --tp 2 --max-model-len 8192 "
                "--quant awq --gpu-memory-utilization 0.92" + pin,
        f"{pasted_as} casperhansen/llama-3.3-70b-instruct-awq --tensor-parallel-size 2 --max-model-len 8192 "
        "--quantization awq --gpu-memory-utilization 0.92", "2x4090")
    assert flags == fixed


def test_qwen3_8b_above_its_length_plain_form_and_api(capsys):
    flags = same_as_pasted(capsys, "check qwen3-8b --gpu h100-sxm --engine vllm --max-model-len 100000",
                           "vllm serve Qwen/Qwen3-8B --max-model-len 100000", "h100-sxm")
    assert flags == "--max-model-len 40960"
    r = vramcalc.check("qwen3-8b", "h100-sxm", engine="vllm", max_model_len=100000)
    assert not r.fits and r.fix is not None and flag_of(r.fix) == flags
    # vLLM 0.34 asks to leave --gpu-memory-utilization unset with its extensible KV cache (vllm/config/cache.py)
    assert r.corrected_command == "vllm serve Qwen/Qwen3-8B --max-model-len 40960"
    assert vramcalc.check("qwen3-8b", "h100-sxm", engine="vllm", max_model_len=40960).fits


def test_mamba_blocks_refusal_plain_form_gets_fewer_sequences(capsys):
    """Qwen3.6-27B FP8 at TP 2 with fp8 KV on 2x4090 with vLLM 0.33: refused because max_num_seqs 256 exceeds the
    Mamba cache blocks. --max-num-seqs at the block count is re-checked first; the engine model's margin refuses it
    there, and the first that starts is the one both forms name."""
    plain = ("check Qwen/Qwen3.6-27B --quant fp8-block --gpu 2x4090 --engine vllm --tp 2 --kv-cache-dtype fp8 "
             "--max-model-len 32768 --engine-version 0.33.0")
    r = vramcalc.check("Qwen/Qwen3.6-27B", "2x4090", engine="vllm", quant="fp8-block", tp=2, kv_cache_dtype="fp8",
                       max_model_len=32768, engine_version="0.33.0")
    (e,) = [e for e in r.errors if e.code == "vllm.mamba.seqs_exceed_blocks"]
    blocks = int(e.fix.split()[-1])
    flags = same_as_pasted(capsys, plain, f"{V033} Qwen/Qwen3.6-27B-FP8 -tp 2 --kv-cache-dtype fp8 "
                                          "--max-model-len 32768", "2x4090")
    assert flags.startswith("--max-num-seqs ") and int(flags.split()[-1]) <= blocks
    assert r.fix is not None and flag_of(r.fix) == flags


def test_llamacpp_plain_form_gets_the_pasted_fix(capsys):
    flags = same_as_pasted(capsys, "check Qwen/Qwen3-32B --quant Q4_K_M --gpu 4090 --engine llamacpp -c 131072 "
                                   "-ngl 99 --parallel 1",
                           "llama-server -m Qwen3-32B-Q4_K_M.gguf -c 131072 -ngl 99 -np 1", "4090")
    assert flags.startswith(("-c ", "-ngl "))
    r = vramcalc.check("Qwen/Qwen3-32B", "4090", engine="llamacpp", quant="gguf:Q4_K_M", n_ctx=131072,
                       n_gpu_layers=99, n_parallel=1)
    assert r.fix is not None and flag_of(r.fix) == flags and r.corrected_command.startswith("llama-server ")


def test_no_single_change_is_said(capsys):
    code, out = cli(capsys, "check meta-llama/Llama-3.3-70B-Instruct --gpu 4090 --engine vllm --max-model-len 8192")
    assert code == 1
    (fix,) = [line for line in out if line.startswith("fix ")]
    assert fix.startswith("fix     no single change found")
    assert vramcalc.check("meta-llama/Llama-3.3-70B-Instruct", "4090", engine="vllm", max_model_len=8192).fix is None
