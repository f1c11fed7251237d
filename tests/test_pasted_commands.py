"""`vramcalc check -- <command>` / vramcalc.check_command on real commands (tests/data/pasted_commands.json, each with
its URL): the same answer as vramcalc.check asked with the equivalent options, or the engine's own refusal. The flag
tables (data/vllm_serve_args.json from vLLM 0.33.0's parser, data/llamacpp_args.json from llama.cpp 4df29be) are
classified completely in data/command_flags.json. No test reaches the network."""

import json
import re
import shlex
from pathlib import Path

import pytest

import vramcalc
from vramcalc.cli import main
from vramcalc.errors import InputError, NotModelledError, VramcalcError
from vramcalc.llamacpp.engine import LlamaOptions
from vramcalc.pasted_command import check_command, flag_classes, llamacpp_table, read_command, vllm_table
from vramcalc.vllm.engine import VLLMOptions
from vramcalc.vllm.json_flags import FIELDS as JSON_FLAG_FIELDS

DATA = json.loads((Path(__file__).parent / "data" / "pasted_commands.json").read_text())["commands"]
ERRORS = {"InputError": InputError, "NotModelledError": NotModelledError, "VramcalcError": VramcalcError}


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


V033 = "docker run --gpus all vllm/vllm-openai:v0.33.0"  # a pasted command on vLLM 0.33.0 (its image tag)

def test_thirty_real_commands_with_their_sources():
    assert len(DATA) >= 30 and len({c["id"] for c in DATA}) == len(DATA)
    assert all(c["source"].startswith(("https://", "vramcalc issue 23")) for c in DATA)
    assert {"vllm", "llamacpp"} <= {c["as"]["engine"] for c in DATA if "as" in c}


_CHECKED: dict = {}


def _checked(command: str, system: str):
    """check_command of a recorded case, once a worker: the two tests over every case share it (xdist_group)."""
    if (command, system) not in _CHECKED:
        _CHECKED[command, system] = check_command(command, system)
    return _CHECKED[command, system]


@pytest.mark.xdist_group("pasted-cases")
@pytest.mark.parametrize("case", [c for c in DATA if "as" in c], ids=lambda c: c["id"])
def test_same_answer_as_the_equivalent_check(case):
    r = _checked(case["command"], case["system"])
    want = case["as"]
    options = json.loads(json.dumps(r.options))  # tuples as JSON lists, as the case records them
    assert (r.engine, r.model, options) == (want["engine"], want["model"], want["options"])
    same = vramcalc.check(want["model"], r.system, engine=want["engine"], **want["options"])
    mine, theirs = r.result.to_dict(), same.to_dict()
    # the corrected command in each form's own words: the pasted command with the change, the engine command with it
    mine.pop("corrected_command"), theirs.pop("corrected_command")
    if r.fix and ("(every visible GPU)" in r.fix or "engine_refuses" in case):  # a fix the flag form has no words for
        mine.pop("fix"), theirs.pop("fix")
    assert mine == theirs
    if "engine_refuses" in case:  # refused as written: the figures are the corrected command's
        assert not r.fits and r.corrected_command
        said = [w for w in r.warnings if w.code == "command.engine_refuses"]
        assert len(said) == 1 and case["engine_refuses"] in said[0].text
        assert read_command(r.corrected_command)[1].options == read_command(case["command"])[1].options
        assert check_command(r.corrected_command, case["system"]).fits == same.fits
    else:
        assert r.fits == same.fits
    if not re.search(r"\(\w+=", r.vramcalc_command):  # else an option vramcalc check has no flag for (n_outputs_max)
        _CHECK_PARSER.parse_args(shlex.split(r.vramcalc_command)[2:])  # the flag form is one vramcalc check takes


def _check_parser():
    import argparse

    from vramcalc.cli.check import add_arguments

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    return ap


_CHECK_PARSER = _check_parser()


@pytest.mark.parametrize("case", [c for c in DATA if "refused" in c], ids=lambda c: c["id"])
def test_refused_in_the_engines_words(case):
    with pytest.raises(ERRORS[case["refused"]["error"]]) as e:
        check_command(case["command"], case["system"])
    assert case["refused"]["says"] in str(e.value)


def test_mla_cache_types_refusal_offers_the_v_type_of_k_rechecked():
    """llama.cpp PR #11397's DeepSeek-R1 command (-ctk iq4_nl, V left f16) is refused by 4df29be in its words
    (src/llama-context.cpp: an MLA model takes one cache type); the smallest fix sets -ctv to K's type and re-checks
    as starting where the rest fits (2x H200, 256 GiB of RAM)."""
    case = next(c for c in DATA if c["id"] == "llama-cli-ot-cuda0")
    r = check_command(case["command"], "2xh200", host_ram_bytes=256 * 2**30)
    assert not r.fits and "llamacpp.kv.mla_kv_types" in [e.code for e in r.result.errors]
    assert r.corrected_command and r.corrected_command.endswith("-ctv iq4_nl")
    assert check_command(r.corrected_command, "2xh200", host_ram_bytes=256 * 2**30).fits


def test_seed_gpu_count_from_cuda_visible_devices():
    r = check_command("CUDA_VISIBLE_DEVICES=0,1 vllm serve Qwen/Qwen3.6-27B-FP8 --tensor-parallel-size 2", "4090")
    assert r.system == "2x4090" and r.result.layout.tp == 2
    with pytest.raises(InputError, match=r"CUDA_VISIBLE_DEVICES=0,1 gives 2 GPUs, but --gpu '4x3090' has 4"):
        check_command("CUDA_VISIBLE_DEVICES=0,1 vllm serve Qwen/Qwen3-8B", "4x3090")


def test_without_gpu_the_answer_is_the_smallest_reference_gpu_it_starts_on(capsys):
    """No --gpu: reference GPUs smallest first, at the command's GPU count (TP x PP here); the answer is the full
    check on the first that starts, and every smaller one was refused."""
    cmd = "vllm serve Qwen/Qwen3-8B --tensor-parallel-size 2 --max-model-len 32768"
    r = check_command(cmd)
    names = list(r.tried_systems)
    assert all(n.startswith("2x") for n in names) and r.system == names[-1]
    assert [r.tried_systems[n] for n in names] == [False] * (len(names) - 1) + [True] and r.fits
    assert r.result == check_command(cmd, r.system).result
    assert r.warnings[0].code == "command.no_gpu" and r.system in r.warnings[0].text
    assert main(["check", "--", *cmd.split()]) == 0
    assert "tried   2xrtx-3060-12gb: does not start" in capsys.readouterr().out


def test_visible_gpus_without_tp_are_left_idle_as_vllm_leaves_them():
    """vLLM's tensor_parallel_size defaults to 1 whatever CUDA_VISIBLE_DEVICES shows: the command runs on one
    4090 (32B AWQ at 32K does not start there), and the re-checked fix is TP over both visible GPUs."""
    r = check_command("CUDA_VISIBLE_DEVICES=0,1 vllm serve Qwen/Qwen3-32B-AWQ --max-model-len 32768", "4090")
    assert r.system == "rtx-4090" and r.result.layout.tp == 1 and not r.fits
    assert "command.idle_gpus" in [w.code for w in r.warnings]
    assert r.corrected_command and r.corrected_command.endswith("--tensor-parallel-size 2")
    assert check_command(r.corrected_command, "4090").fits


def test_a_model_the_catalog_holds_only_quantized_is_not_answered_with_the_quantized_bytes():
    """Offline, deepseek-ai/DeepSeek-V3-0324 (FP8, 671B) has only nvidia's NVFP4 release in the catalog: its 4-bit
    bytes would be a false "fits", so the command is refused with what to pass instead."""
    with pytest.raises(InputError, match=r"only a quantized release of it \(nvidia/DeepSeek-V3-0324-NVFP4, nvfp4\)"):
        check_command("vllm serve deepseek-ai/DeepSeek-V3-0324 --tensor-parallel-size 8", "8xh200")
    assert check_command("vllm serve nvidia/DeepSeek-V3-0324-NVFP4 --tensor-parallel-size 8", "8xb200").model \
        == "nvidia/DeepSeek-V3-0324-NVFP4"


def test_no_effect_flags_listed_once_and_upper_bound_warned():
    r = check_command("vllm serve Qwen/Qwen3-8B --port 8000 --host 0.0.0.0 --api-key x --served-model-name q "
                      "--enable-prefix-caching --skip-mm-profiling", "4090")
    assert r.no_effect == ["--port 8000", "--host 0.0.0.0", "--api-key x", "--served-model-name q"]
    assert r.options["enable_prefix_caching"] is True  # its memory effect is on Mamba state only
    assert [w.code for w in r.warnings] == ["command.upper_bound"]


@pytest.mark.parametrize("command,flag", [
    ("vllm serve Qwen/Qwen3-8B --enable-lora --max-model-len 8192 --max-num-seqs 64 "
     "--weight-transfer-config '{\"backend\": \"sparse_nccl\"}'", "--weight-transfer-config"),
    ("VLLM_BATCH_INVARIANT=1 vllm serve Qwen/Qwen3-8B -pp 2", "VLLM_BATCH_INVARIANT"),
])
def test_not_modelled_flags_are_warned_about_by_name(command, flag):
    """The rest of the command is checked; a command.not_modelled warning names the flag and says the figures
    ignore it, and the figures are those of the command without it."""
    r = check_command(command, "2x4090")
    (w,) = [w for w in r.warnings if w.code == "command.not_modelled"]
    assert w.text.startswith(flag) and "the figures ignore it" in w.text
    without = " ".join(command.split(" ", 1)[1:]) if command.startswith("VLLM_") else \
        command.replace(f" {flag}", "", 1).replace(" cv.gguf", "") \
        .replace(" '{\"backend\": \"sparse_nccl\"}'", "")
    alone = check_command(without, "2x4090")
    figures = {k: v for k, v in r.result.to_dict().items() if k not in ("fits", "errors", "fix", "corrected_command")}
    assert figures == {k: v for k, v in alone.result.to_dict().items() if k not in ("fits", "errors", "fix", "corrected_command")}
    # the flag changes memory unmodelled: a command that starts without it is not promised to start with it
    assert alone.fits and not r.fits and not r.result.fits
    (e,) = [e for e in r.result.errors if e.code == "command.not_modelled_verdict"]
    assert flag in e.text and r.fix and flag in r.fix and r.corrected_command is None


@pytest.mark.parametrize("engine", ["vllm", "llamacpp", "llama_bench", "vllm_env"])
def test_every_not_modelled_flag_warns_by_name(engine):
    """Each flag classified not_modelled, pasted alone onto a command that checks, answers with a
    command.not_modelled warning that names it (or, with a value the flag's reader refuses, the engine's error)."""
    base = {"vllm": "vllm serve Qwen/Qwen3-8B --max-model-len 8192", "vllm_env": "vllm serve Qwen/Qwen3-8B",
            "llamacpp": "llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192 -ngl 99",
            "llama_bench": "llama-bench -m Qwen3-8B-Q4_K_M.gguf -ngl 99"}[engine]
    kinds = {n: o for o in (vllm_table()["options"] if engine == "vllm" else llamacpp_table()["options"]
                            if engine == "llamacpp" else llamacpp_table()["llama_bench"] if engine == "llama_bench"
                            else []) for n in o["names"]}
    names = [n for n, c in flag_classes()[engine].items() if c["class"] == "not_modelled"]
    # every flag of llama-bench's, (since --diffusion-config, tests/test_vllm_diffusion.py) vllm serve's and (since
    # --spec-type draft-eagle3, tests/test_llamacpp_eagle3.py) llama-server's table is modelled, has no effect, or is
    # bounded
    assert names or engine in ("llama_bench", "vllm", "llamacpp")
    for name in names:
        entry = flag_classes()[engine][name]
        if engine == "vllm_env":
            # a variable with choices (vllm/envs.py env_with_choices) takes one of them; another is refused
            value = next(v for v in entry.get("choices") or ("1", "0", "2", "x")
                         if v not in (entry.get("no_effect_values") or []))
            command = f"{name}={value} {base}"
        else:
            o = kinds[name]
            takes = o["kind"] == "value"
            value = next((v for v in ("2", "1", "x.json", "{}") if v not in (entry.get("no_effect_values") or [])),
                         "x") if takes else None
            if entry.get("example"):  # a JSON flag whose values vLLM refuses unless whole: one it takes
                value = shlex.quote(entry["example"])
            elif entry.get("fields"):  # a JSON object of a vLLM config class: one key that acts
                value = shlex.quote(json.dumps({next(k for k in entry["fields"]
                                                     if k not in (entry.get("no_effect_keys") or [])
                                                     and k not in (entry.get("speed_keys") or {})
                                                     and k not in (entry.get("modelled_keys") or [])): 1}))
            if entry.get("values"):  # a value the engine takes and vramcalc does not model (another is refused)
                value = next(v for v in entry["values"] if v not in (entry.get("no_effect_values") or [])
                             + (entry.get("modelled_values") or []))
            if o.get("choices"):
                other = [c for c in o["choices"] if c not in (entry.get("no_effect_values") or [])]
                if not other:  # every value the table takes leaves the default: listed as no effect
                    assert read_command(f"{base} {name} {o['choices'][0]}")[1].no_effect[-1].startswith(name)
                    continue
                value = other[0]
            command = f"{base} {name}" + (f" {value}" if takes else "")
            if engine == "llamacpp" and name not in llamacpp_table()["programs"]["llama-server"]:
                if name not in llamacpp_table()["programs"]["llama-cli"]:
                    continue  # a flag of other llama.cpp programs only, which vramcalc does not read
                command = command.replace("llama-server", "llama-cli", 1)
        _, r = read_command(command)
        if entry.get("field") in ("models_dir", "models_preset", "models_max"):  # beside -m: no router, no effect
            assert f"{name} {value}" in r.no_effect and not r.warnings, command
            continue
        said = [w for w in r.warnings if w.code == "command.not_modelled"]
        assert len(said) == 1 and said[0].text.startswith(name) and "the figures ignore it" in said[0].text, command


def test_unknown_flags_in_each_engines_words():
    # argparse (vllm serve) and common/arg.cpp common_params_parse_ex (4df29be)
    with pytest.raises(InputError, match=r"^vllm serve: error: unrecognized arguments: --foo$"):
        check_command("vllm serve Qwen/Qwen3-8B --foo", "4090")
    with pytest.raises(InputError, match=r"^llama-server: error: invalid argument: --foo$"):
        check_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --foo", "4090")
    with pytest.raises(InputError, match=r"^llama-bench: error: invalid parameter for argument: --foo$"):
        check_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf --foo", "4090")


def test_llama_cpp_short_forms_map_to_options():
    p, r = read_command("./build/bin/llama-server -m Qwen3-8B-Q4_K_M.gguf -ngl 20 -np 2 -kvu -fa off -ctk q8_0 "
                        "-ctv q8_0 -ts 3,1 -sm layer -mg 1 -ot 'ffn_.*_exps=CPU' --no-mmap --mlock -c 16384 "
                        "--fit off --port 8080")
    assert r.options == {"n_gpu_layers": "20", "n_parallel": 2, "kv_unified": True, "flash_attn": "off",
                         "type_k": "q8_0", "type_v": "q8_0", "tensor_split": (3.0, 1.0), "split_mode": "layer",
                         "main_gpu": 1, "override_tensor": ("ffn_.*_exps=CPU",), "no_mmap": True, "mlock": True,
                         "n_ctx": 16384}
    assert r.no_effect == ["--port 8080", "--fit off"]


def test_rpc_servers_are_nodes_of_the_system():
    with pytest.raises(InputError, match=r"--gpu 2x1x4090"):
        check_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --rpc 192.168.1.2:50052", "4090")
    r = check_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --rpc 192.168.1.2:50052 -c 8192", "2x1x4090")
    assert r.result.fits


def test_docker_gpu_device_list_and_image_version():
    p, _ = read_command("docker run --gpus '\"device=0,1\"' --ipc=host vllm/vllm-openai:v0.20.0 Qwen/Qwen3-8B -tp 2")
    assert (p.gpu_count, p.engine_version, p.model) == (2, "0.20.0", "Qwen/Qwen3-8B")
    r = check_command("docker run --gpus '\"device=0,1\"' vllm/vllm-openai:v0.20.0 --model Qwen/Qwen3-8B -tp 2",
                      "4090")
    assert r.system == "2x4090" and r.result.engine_version == "0.20.0"
    p, r2 = read_command("docker run -v /models:/models --gpus all ghcr.io/ggml-org/llama.cpp:server-cuda "
                         "-m /models/Qwen3-8B-Q4_K_M.gguf -c 8192 -ngl 99")
    assert p.program == "llama-server" and r2.options == {"n_ctx": 8192, "n_gpu_layers": "99"}


def test_llama_bench_context_is_prompt_plus_generation():
    _, r = read_command("llama-bench -m Qwen3-8B-Q8_0.gguf -p 512 -n 128 -ngl 99 -fa 1")
    assert r.options["n_ctx"] == 640 and r.options["n_gpu_layers"] == "99" and r.options["flash_attn"] == "on"


def test_the_fix_is_a_rechecked_command_that_starts():
    r = check_command("vllm serve Qwen/Qwen3.6-27B-FP8 --pipeline-parallel-size 2", "2x4090")
    assert not r.fits and r.corrected_command.startswith("vllm serve Qwen/Qwen3.6-27B-FP8 --pipeline-parallel-size 2 ")
    assert check_command(r.corrected_command, "2x4090").fits
    r2 = check_command("llama-server -m Qwen3-32B-Q4_K_M.gguf -c 131072 -ngl 99 -np 1", "4090")
    assert not r2.fits and r2.corrected_command is not None
    assert check_command(r2.corrected_command, "4090").fits


def test_vllm_fix_with_a_shorter_context():
    r = check_command("vllm serve Qwen/Qwen3-8B", "4090")
    if not r.fits:
        assert r.corrected_command is not None and check_command(r.corrected_command, "4090").fits


def test_every_flag_of_the_tables_is_classified():
    classes = flag_classes()
    for o in vllm_table()["options"]:
        for n in o["names"]:
            assert n in classes["vllm"] or o["names"][0] in classes["vllm"], n
    for o in llamacpp_table()["options"]:
        for n in o["names"] + o["negated"]:
            assert n in classes["llamacpp"] or o["names"][0] in classes["llamacpp"], n
    for o in llamacpp_table()["llama_bench"]:
        assert o["names"][0] in classes["llama_bench"]
    assert set(classes["vllm_env"]) == set(vllm_table()["env"])


def test_modelled_flags_name_real_option_fields():
    # fields the readers set beyond the options classes: the model reference and the system's nodes; vLLM's --config
    # file, read as the flags it holds (vramcalc/vllm/config_file.py)
    extra = {"model", "hf_repo", "hf_file", "revision", "hf_config_path", "rpc_nodes", "fit", "n_prompt", "n_gen", "n_depth",
             "n_prompt_gen", "nnodes", "data_parallel_size_local", "optimization_level", "compilation_config",
             "preset", "load_mode", "model_url", "hf_repo_draft", "mmproj_url",
             "docker_repo", "config", "image_min_tokens", "image_max_tokens", "mtmd_batch_max_tokens",
             "kernel_config",  # --kernel-config: read as the backends, linear_backend_per_quant and the RDNA copies
             "models_dir", "models_preset", "models_max"}  # llama-server's router: each child checked (_router_check)
    extra |= set(JSON_FLAG_FIELDS)  # vLLM's JSON flags, refused or read in the command (vramcalc/vllm/json_flags.py)
    for engine, fields in (("vllm", VLLMOptions.model_fields), ("vllm_env", VLLMOptions.model_fields),
                           ("llamacpp", LlamaOptions.model_fields), ("llama_bench", LlamaOptions.model_fields)):
        for name, c in flag_classes()[engine].items():
            if c["class"] == "modelled":
                assert c["field"] in fields or c["field"] in extra, (engine, name, c["field"])
            if c["class"] in ("not_modelled", "upper_bound"):
                assert c.get("note"), (engine, name)


def test_tables_are_the_modelled_releases():
    assert vllm_table()["version"] == json.loads((Path(vramcalc.__file__).parent / "data" / "vllm.json")
                                                 .read_text())["default_version"]
    assert llamacpp_table()["commit"].startswith("4df29be")


def test_cli_pasted_command(capsys):
    code = main(["check", "--gpu", "4090", "--", "vllm", "serve", "Qwen/Qwen3-8B", "--max-model-len", "8192",
                 "--port", "8000"])
    out = capsys.readouterr().out
    assert code == 0 and "as      vramcalc check Qwen/Qwen3-8B --gpu 4090 --engine vllm --max-model-len 8192" in out
    assert "no effect on memory: --port 8000" in out
    code = main(["check", "--gpu", "4090", "--json", "--", "vllm serve Qwen/Qwen3-8B --max-model-len 8192"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["fits"] and data["result"]["engine"] == "vllm"
    assert vramcalc.CommandResult.model_validate(data).to_dict() == data
    assert main(["check", "--gpu", "4090", "--", "vllm", "serve", "x", "--foo"]) == 2
    assert "unrecognized arguments: --foo" in capsys.readouterr().err


MIXES = json.loads((Path(__file__).parent / "data" / "unsloth_mix_sizes.json").read_text())["files"]


@pytest.mark.parametrize("f", MIXES, ids=lambda f: f["repo"])
def test_a_publishers_mix_lies_in_its_bracket_and_is_sized_at_the_top(f):
    from vramcalc.sources.model_names import gguf_mix

    mix = gguf_mix(f["ftype"])
    size = {q: vramcalc.check(f["model"], "cpu", engine="llamacpp", quant=f"gguf:{q}", context=4096).model_size_bytes
            for q in (mix.lower, mix.upper)}
    assert size[mix.lower] <= f["gb"] * 1e9 <= size[mix.upper]  # the published file is inside the bracket
    r = check_command(f"llama-server -m {f['repo'].split('/')[1].removesuffix('-GGUF')}-{f['ftype']}.gguf -c 4096",
                      "cpu")
    assert r.options["quant"] == f"gguf:{mix.upper}" and "command.gguf_mix" in {w.code for w in r.warnings}
    assert r.result.model_size_bytes == size[mix.upper] >= f["gb"] * 1e9  # a fit holds for the real file


def test_a_real_gguf_header_wins_over_its_name(tmp_path):
    from llamacpp_models import write_gguf

    path = str(write_gguf("llama-tied-q4k", tmp_path / "tiny-UD-Q4_K_XL.gguf"))
    r = check_command(f"llama-server -m {path} -c 2048 -ngl 99", "4090")
    assert r.model == path and "quant" not in r.options
    assert "command.gguf_mix" not in {w.code for w in r.warnings}
    same = vramcalc.check(path, "4090", engine="llamacpp", n_ctx=2048, n_gpu_layers="99")
    assert r.result.to_dict() == same.to_dict()


def test_quantized_repo_offline_names_the_repo_to_fetch():
    r = check_command("vllm serve Qwen/Qwen3.6-27B-FP8 -tp 2 --max-model-len 32768", "2x4090")
    (w,) = [w for w in r.warnings if w.code == "command.repo_offline"]
    assert "Qwen/Qwen3.6-27B-FP8" in w.text and "fetch" in w.text and r.options["quantization"] == "fp8-block"
    with pytest.raises(InputError, match="awq release"):
        check_command("vllm serve casperhansen/llama-3.3-70b-instruct-awq --quantization gptq -tp 2", "2x4090")


def test_cli_check_of_a_quantized_repo_offline_answers_for_its_base(capsys):
    code = main(["check", "Qwen/Qwen3.6-27B-FP8", "--gpu", "2x4090", "--engine", "vllm", "--ctx", "32768", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and out["model"]["id"] == "Qwen/Qwen3.6-27B"
    assert [w["code"] for w in out["warnings"]][0] == "command.repo_offline"
    assert out == vramcalc.check("Qwen/Qwen3.6-27B", "2x4090", engine="vllm", context=32768, quant="fp8-block",
                                 ).model_copy(update={"warnings": [vramcalc.VLLMResult.model_validate(out).warnings[0]]
                                              + vramcalc.check("Qwen/Qwen3.6-27B", "2x4090", engine="vllm",
                                                               context=32768, quant="fp8-block").warnings}).to_dict()


def test_quantization_on_a_quantized_checkpoint_is_its_own_method():
    r = check_command("vllm serve Qwen/Qwen3-32B-AWQ -tp 2 --quantization awq_marlin --max-model-len 8192", "2x4090")
    assert "quantization" not in r.options and r.no_effect == ["--quantization awq_marlin (the checkpoint's own method)"]
    assert r.result.to_dict() == vramcalc.check("Qwen/Qwen3-32B-AWQ", "2x4090", engine="vllm", tp=2,
                                                max_model_len=8192).to_dict()
    # vllm/config/model.py ModelConfig._verify_quantization (0.33.0)
    with pytest.raises(InputError, match=r"model config \(awq\) does not match .* argument \(gptq\)"):
        check_command("vllm serve Qwen/Qwen3-32B-AWQ -tp 2 --quantization gptq", "2x4090")


def test_vllm_human_readable_ints_and_underscored_flags():
    # vllm/utils/argparse_utils.py: human_readable_int (k = 1000, K = 1024) and FlexibleArgumentParser (--a_b)
    _, r = read_command("vllm serve Qwen/Qwen3-8B --max_model_len 32k --max-num-batched-tokens 8K -O2")
    assert r.options == {"max_model_len": 32000, "max_num_batched_tokens": 8192}
    assert r.no_effect == ["--optimization-level 2"]  # vllm/config/vllm.py: the default, O2
    # vllm/config/vllm.py OPTIMIZATION_LEVEL_03 is O2's settings
    assert read_command("vllm serve Qwen/Qwen3-8B -O3")[1].no_effect == ["--optimization-level 3"]


def test_the_free_memory_gate_is_fixed_by_the_highest_utilization_it_allows():
    # vLLM's init_device refuses 0.99 of a desktop 4090 (the display and CUDA context hold memory); the fix is
    # the highest utilization the gate passes, and the corrected command is re-checked
    r = check_command(f"{V033} Qwen/Qwen3-8B --max-model-len 8192 --gpu-memory-utilization 0.99", "4090")
    assert not r.fits and "vllm.startup.free_memory" in [e.code for e in r.result.errors]
    assert r.fix.startswith("--gpu-memory-utilization 0.9") and "--gpu-memory-utilization 0.99" not in r.corrected_command
    assert check_command(r.corrected_command, "4090").fits


def test_presets_expand_to_the_params_arg_cpp_gives_them():
    # common/arg.cpp --gpt-oss-20b-default (4df29be): the -hf file, -ub 2048 -b 32768, 2 slots of 131072 tokens
    _, r = read_command("llama-server --gpt-oss-20b-default")
    assert r.model == "hf:ggml-org/gpt-oss-20b-GGUF::gpt-oss-20b-mxfp4.gguf"
    assert r.options == {"n_ubatch": 2048, "n_batch": 32768, "n_parallel": 2, "n_ctx": 262144, "kv_unified": False}
    _, later = read_command("llama-cli --gpt-oss-20b-default -c 32768")  # a later flag overrides the preset's
    assert later.options["n_ctx"] == 32768 and "--port 8013" not in later.no_effect
    # --fim-qwen-7b-spec / -14b-spec: the target's -hf repo and file, and the draft's hf_repo and hf_file, which
    # -hfd REPO -md FILE set (common/arg.cpp: the -md handler sets the draft's hf_file too)
    for size in ("7b", "14b"):
        _, spec = read_command(f"llama-server --fim-qwen-{size}-spec")
        assert spec.model == (f"hf:ggml-org/Qwen2.5-Coder-{size.upper()}-Q8_0-GGUF::qwen2.5-coder-{size}-q8_0.gguf")
        assert spec.options == {"model_draft": "hf:ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF::qwen2.5-coder-0.5b-q8_0.gguf",
                                "n_ubatch": 1024, "n_batch": 1024, "n_ctx": None}
        assert spec.no_effect == ["--port 8012", "--cache-reuse 256"]
        assert "llamacpp.draft.sidecar" not in [w.code for w in spec.warnings]  # hf_file set: no sidecar lookup
    _, later = read_command("llama-server --fim-qwen-7b-spec -md qwen2.5-coder-1.5b-q8_0.gguf")  # a later -md wins
    assert later.options["model_draft"] == "hf:ggml-org/Qwen2.5-Coder-0.5B-Q8_0-GGUF::qwen2.5-coder-1.5b-q8_0.gguf"


def test_router_mode_reads_the_models_it_serves(tmp_path):
    """tools/server/server.cpp llama_server (4df29be): no model path and no -hf repo is router mode, which serves the
    models of llama.cpp's cache, --models-dir (common/preset.cpp load_from_models_dir: each .gguf, or subfolder with
    its first shard, mmproj and sidecar) and --models-preset (load_from_ini: each section but [*]), each in a child
    process (checked one by one: tests/test_llamacpp_router.py). -mu / -dr download in single-model mode only, so
    alone they start a router serving only the cache. Beside -m or -hf there is no router: the flags change nothing."""
    from vramcalc.pasted_command import RouterMode

    d = tmp_path / "models"
    (d / "big").mkdir(parents=True)
    for n in ("Qwen3-8B-Q4_K_M.gguf", "mmproj-x.gguf", "mtp-x.gguf", "notes.txt"):
        (d / n).write_bytes(b"")
    for n in ("k-00001-of-00002.gguf", "k-00002-of-00002.gguf", "mmproj-k.gguf"):
        (d / "big" / n).write_bytes(b"")
    ini = tmp_path / "p.ini"
    ini.write_text("version = 1\n[*]\nc = 8192\n[coder]\nmodel = /m/coder-Q8_0.gguf ; the coder\n"
                   "[ggml-org/gemma-3-4b-it-GGUF:Q4_K_M]\nhf = ggml-org/gemma-3-4b-it-GGUF\nn-gpu-layers = 99\n"
                   "n-gpu-layers = 12\n")
    with pytest.raises(RouterMode, match="router mode") as e:
        read_command(f"llama-server --models-dir {d} --models-preset {ini} -c 4096")
    kids = {n: c for n, c, _ in e.value.children}
    assert list(kids) == ["Qwen3-8B-Q4_K_M", "big", "coder", "ggml-org/gemma-3-4b-it-GGUF:Q4_K_M"]
    assert kids["big"] == (f"llama-server --model {d / 'big' / 'k-00001-of-00002.gguf'} "
                           f"--mmproj {d / 'big' / 'mmproj-k.gguf'} -c 4096")  # [*]'s c under the router's -c
    assert kids["coder"] == "llama-server --model /m/coder-Q8_0.gguf -c 4096"
    assert kids["ggml-org/gemma-3-4b-it-GGUF:Q4_K_M"] == ("llama-server --hf-repo ggml-org/gemma-3-4b-it-GGUF "
                                                          "--n-gpu-layers 12 -c 4096")  # a later key wins
    with pytest.raises(NotModelledError, match="-dr ai/qwen3:8B-Q4_K_M without -m"):
        check_command("llama-server -dr ai/qwen3:8B-Q4_K_M", "4090")
    with pytest.raises(NotModelledError, match="-mu without -m"):
        check_command("llama-server -mu https://x/y/Qwen3-8B-Q4_K_M.gguf", "4090")
    with pytest.raises(InputError, match=f"'{tmp_path / 'none'}' does not exist or is not a directory"):
        check_command(f"llama-server --models-dir {tmp_path / 'none'}", "4090")
    with pytest.raises(InputError, match="preset file does not exist"):
        check_command(f"llama-server --models-preset {tmp_path / 'none.ini'}", "4090")
    ini.write_text("[x]\nmodel = /m/x.gguf\nno-such-key = 1\n")
    with pytest.raises(InputError, match="option 'no-such-key' not recognized in preset 'x'"):
        check_command(f"llama-server --models-preset {ini}", "4090")
    _, r = read_command(f"llama-server -m Qwen3-8B-Q4_K_M.gguf --models-dir {d} --models-max 2")
    assert r.no_effect == [f"--models-dir {d}", "--models-max 2"] and not r.warnings


def test_router_mode_refuses_too_many_startup_models(tmp_path):
    """tools/server/server-models.cpp at 4df29be: each child is llama-server with the model's preset and the router's
    own flags over it (load_models: preset.merge(base_preset)), less those unset_reserved_args removes (--models-*,
    --host / --port, --api-key, the SSL files, the router's -m / -mm / -a / -hf); the presets whose load-on-startup
    is true (common_arg_utils::is_truthy: on, enabled, true, 1), or all of them when [*] says so (cascade), start
    with the router, and more than --models-max (default 4) stop it: 'number of models to load on startup (N)
    exceeds models_max (M)', printed by server.cpp as 'failed to initialize router models: ...'."""
    from vramcalc.pasted_command import RouterMode

    d = tmp_path / "models"
    d.mkdir()
    for n in ("a.gguf", "b.gguf"):
        (d / n).write_bytes(b"")
    with pytest.raises(RouterMode) as e:
        read_command(f"llama-server --models-dir {d} --models-max 1 --port 9 -c 4096 -ngl 99 -a x")
    assert e.value.children == [("a", f"llama-server --model {d / 'a.gguf'} -c 4096 -ngl 99", False),
                                ("b", f"llama-server --model {d / 'b.gguf'} -c 4096 -ngl 99", False)]
    assert e.value.models_max == 1
    ini = tmp_path / "p.ini"
    ini.write_text("[x]\nmodel = /m/x.gguf\nload-on-startup = true\n[y]\nmodel = /m/y.gguf\nload-on-startup = on\n"
                   "[z]\nmodel = /m/z.gguf\nload-on-startup = false\n")
    with pytest.raises(InputError, match=r"^failed to initialize router models: number of models to load on startup "
                                         r"\(2\) exceeds models_max \(1\)"):
        check_command(f"llama-server --models-preset {ini} --models-max 1", "4090")
    with pytest.raises(RouterMode) as e:  # 2 of the default 4
        read_command(f"llama-server --models-preset {ini}")
    assert [(n, on) for n, _, on in e.value.children] == [("x", True), ("y", True), ("z", False)]
    ini.write_text("[*]\nload-on-startup = 1\n[x]\nmodel = /m/x.gguf\n[y]\nmodel = /m/y.gguf\nload-on-startup = 0\n")
    with pytest.raises(InputError, match=r"\(3\) exceeds models_max \(2\)"):  # x and the folder's a and b
        check_command(f"llama-server --models-preset {ini} --models-dir {d} --models-max 2", "4090")
    ini.write_text("[*]\nload-on-startup = 1\n[a]\nload-on-startup = 0\n")  # the folder's a, set off by its section
    with pytest.raises(RouterMode) as e:
        read_command(f"llama-server --models-preset {ini} --models-dir {d} --models-max 1")
    assert [(n, on) for n, _, on in e.value.children] == [("a", False), ("b", True)]

def test_docker_repo_is_the_file_llama_cpp_downloads(tmp_path):
    """-dr / --docker-repo [<repo>/]<model>[:tag] (common/download.cpp common_docker_resolve_model, 4df29be): ai/ and
    :latest by default, downloaded to the cache file <repo with / as _>_<tag>.gguf and loaded in place of -m's
    file (-m's path is still needed by llama-server, else router mode). That file read when it is here; else the
    name <model>-<tag>.gguf (ai/ tags are <size>-<quant>); :latest offline names no file type."""
    cache = tmp_path / "cache"
    r = check_command(f"LLAMA_CACHE={cache} llama-server -m x.gguf -dr qwen3:8B-Q4_K_M -c 8192", "4090")
    same = check_command("llama-server -m qwen3-8B-Q4_K_M.gguf -c 8192", "4090")
    assert r.model == same.model == "Qwen/Qwen3-8B" and r.result.devices == same.result.devices
    (w,) = [w for w in r.warnings if w.code == "llamacpp.docker.offline"]
    assert str(cache / "ai_qwen3_8B-Q4_K_M.gguf") in w.text
    assert read_command("llama-cli -dr someone/qwen3:8B-Q8_0")[1].model == "qwen3-8B-Q8_0.gguf"
    # -hf's download replaces it (common_models_handler_apply: the hf tasks finish last)
    assert read_command("llama-cli -dr qwen3:8B-Q8_0 -hf unsloth/Qwen3-8B-GGUF:Q4_K_M")[1].model == \
        "hf:unsloth/Qwen3-8B-GGUF:Q4_K_M"
    with pytest.raises(InputError, match=":latest names no file type"):
        check_command(f"LLAMA_CACHE={cache} llama-cli -dr gemma3", "4090")
    (cache).mkdir()
    (cache / "ai_gemma3_latest.gguf").write_bytes(b"")
    assert read_command(f"LLAMA_CACHE={cache} llama-cli -dr gemma3")[1].model == str(cache / "ai_gemma3_latest.gguf")


def test_spec_draft_hf_is_the_draft_repo_planned_as_hf():
    """--spec-draft-hf / -hfd / -hfrd / --hf-repo-draft REPO[:QUANT] (common/arg.cpp at 4df29be): the draft's hf_repo,
    planned as -hf's (common_download_get_hf_plan), so the draft is the file that quant names: the same draft as
    -md with that file's name (llama.cpp downloads it and points the draft's path at it); -md FILE beside -hfd is
    the repo's file to take. Without :quant, find_best_model's pick (Q4_K_M first); without -md, a sidecar the
    repo may ship is warned about (common_models_handler_init discovers mtp- / eagle3- / dflash- / dspark-)."""
    target = "llama-server -hf ggml-org/Qwen2.5-7B-Instruct-GGUF:Q4_K_M -c 4096 -np 1"
    draft = lambda c: next(e for e in check_command(c, "4090").result.extras if e.kind == "draft")  # noqa: E731
    as_md = draft(f"{target} -md qwen2.5-1.5b-q8_0.gguf")
    for name in ("--spec-draft-hf", "-hfd", "-hfrd", "--hf-repo-draft"):
        r = check_command(f"{target} {name} bartowski/Qwen2.5-1.5B-GGUF:Q8_0", "4090")
        d = next(e for e in r.result.extras if e.kind == "draft")
        assert (d.gpu_bytes, d.host_bytes) == (as_md.gpu_bytes, as_md.host_bytes) and d.gpu_bytes[0] > 1.6e9
        assert "llamacpp.draft.sidecar" in [w.code for w in r.warnings]
        assert "-hfd bartowski/Qwen2.5-1.5B-GGUF:Q8_0" in r.result.command
    with_file = check_command(f"{target} -hfd bartowski/Qwen2.5-1.5B-GGUF -md qwen2.5-1.5b-q8_0.gguf", "4090")
    d = next(e for e in with_file.result.extras if e.kind == "draft")
    assert d.gpu_bytes == as_md.gpu_bytes and "llamacpp.draft.sidecar" not in [w.code for w in with_file.warnings]
    no_tag = check_command(f"{target} -hfd bartowski/Qwen2.5-1.5B-GGUF", "4090")
    assert next(e for e in no_tag.result.extras if e.kind == "draft").gpu_bytes == \
        draft(f"{target} -md qwen2.5-1.5b-q4_k_m.gguf").gpu_bytes
    (w,) = [w for w in no_tag.result.warnings if w.code == "llamacpp.draft.predicted"]
    assert "Qwen/Qwen2.5-1.5B Q4_K_M" in w.text and "without :quant" in w.text
    # a --spec-type: only the sidecars of the draft types it names are looked for (spec_types_is_default)
    typed = read_command(f"{target} -hfd bartowski/Qwen2.5-1.5B-GGUF:Q8_0 --spec-type draft-simple")[1]
    assert "llamacpp.draft.sidecar" not in [w.code for w in typed.warnings]
    (w,) = [w for w in read_command(f"{target} -hfd bartowski/Qwen2.5-1.5B-GGUF:Q8_0 --spec-type draft-mtp")[1]
            .warnings if w.code == "llamacpp.draft.sidecar"]
    assert "a mtp- sidecar" in w.text
    with pytest.raises(InputError, match="-hfd someone/unknown-GGUF:Q8_0: the draft repo names no catalog model"):
        check_command(f"{target} -hfd someone/unknown-GGUF:Q8_0", "4090")


def test_model_url_load_mode_and_no_op_offload():
    _, r = read_command("llama-cli -mu https://huggingface.co/unsloth/Qwen3-8B-GGUF/resolve/main/Qwen3-8B-Q4_K_M.gguf"
                        " -lm none --no-op-offload")
    assert r.model == "Qwen3-8B-Q4_K_M.gguf" and r.options == {"no_mmap": True, "op_offload": False,
                                                               "n_parallel": 1, "n_outputs_max": 2048}
    assert read_command("llama-server -m x.gguf -lm mmap+mlock")[1].options == {"mlock": True}
    # with -m, -mu downloads to -m's path (common/arg.cpp build_url_tasks), which llama-server loads
    assert read_command("llama-server -m /m/qwen3-8b-q8_0.gguf -mu https://x/Qwen3-8B-Q4_K_M.gguf")[1].model == \
        "/m/qwen3-8b-q8_0.gguf"
    # without op offload the CPU layers' ops stay on the host: the first GPU holds no copy of a host weight
    on = vramcalc.check("Qwen/Qwen3-8B", "4090", engine="llamacpp", quant="gguf:Q4_K_M", n_gpu_layers=10, n_ctx=8192,
                        n_ubatch=512)
    off = vramcalc.check("Qwen/Qwen3-8B", "4090", engine="llamacpp", quant="gguf:Q4_K_M", n_gpu_layers=10,
                         n_ctx=8192, n_ubatch=512, op_offload=False)
    assert off.devices[0].compute_buffer_bytes < on.devices[0].compute_buffer_bytes
    assert off.devices[-1].compute_buffer_bytes > on.devices[-1].compute_buffer_bytes


@pytest.mark.xdist_group("pasted-cases")
def test_every_refused_vllm_command_carries_a_rechecked_fix():
    """Each recorded vLLM command (tests/data/pasted_commands.json) that vramcalc refuses names a change that, run
    again through the engine model, starts; the 4x A10 Qwen3.5-35B-A3B hybrid (3.0 GiB of CUDA graphs per GPU inside
    0.33's budget, no KV memory left) gets --enforce-eager, which no other one-flag change could replace."""
    cmds = DATA
    refused = 0
    for c in cmds:
        try:
            if read_command(c["command"])[1].engine != "vllm":  # the parse alone: llama.cpp commands are not run
                continue
            r = _checked(c["command"], c["system"])
        except VramcalcError:  # a model only the Hub has (tests run offline), or a refusal by name
            continue
        if r.fits or not isinstance(r.result, vramcalc.VLLMResult):
            continue
        refused += 1
        assert r.corrected_command, c["id"]
        assert check_command(r.corrected_command, c["system"]).fits, c["id"]
    assert refused >= 4
    eager = next(c for c in cmds if c["id"] == "vllm-python-m-local-path")
    assert check_command(eager["command"], eager["system"]).fix.startswith("--enforce-eager")


# the architecture the catalog reads for Qwen/Qwen3.6-27B (its config.json, with the source that file names)
QWEN36 = json.loads((Path(vramcalc.__file__).parent / "data" / "models" / "Qwen__Qwen3.6-27B.json")
                    .read_text())["config"]["text_config"]


def test_seed_llama_server_kv_and_recurrent_state_are_the_architectures_exact_counts():
    """The issue's llama-server seed on 2x4090. Qwen3.6-27B: 64 layers, every 4th full attention (16), 4 KV heads
    x head_dim 256; the other 48 Gated DeltaNet. llama.cpp (4df29be) with -np 4 and no --kv-unified keeps 4
    streams of n_ctx / 4 cells (src/llama-context.cpp n_ctx_seq), K and V in f16; one recurrent cell per
    sequence holding the conv state ((kernel - 1) x (2 x key dim + value dim)) and the SSM state (value heads x
    key head dim x value head dim), both f32 (src/llama-memory-recurrent.cpp, src/llama-model.cpp qwen35)."""
    t = QWEN36
    full = t["num_hidden_layers"] // t["full_attention_interval"]
    r = check_command("llama-server -m qwen3.6-27b-UD-Q4_K_XL.gguf --n-gpu-layers 99 --ctx-size 65536 --parallel 4",
                      "2x4090")
    res = r.result
    assert (res.n_ctx, res.n_ctx_seq, res.n_parallel, res.kv_unified) == (65536, 16384, 4, False)
    kv = {c.name: c for c in res.caches}
    k_bytes = full * 65536 * t["num_key_value_heads"] * t["head_dim"] * 2
    assert kv["single"].layers == full and kv["single"].k_bytes == kv["single"].v_bytes == k_bytes == 2 * 2**30
    key_dim = t["linear_num_key_heads"] * t["linear_key_head_dim"]
    value_dim = t["linear_num_value_heads"] * t["linear_value_head_dim"]
    per_seq_layer = ((t["linear_conv_kernel_dim"] - 1) * (2 * key_dim + value_dim)
                     + t["linear_num_value_heads"] * t["linear_key_head_dim"] * t["linear_value_head_dim"]) * 4
    assert kv["recurrent"].layers == t["num_hidden_layers"] - full
    assert kv["recurrent"].k_bytes + kv["recurrent"].v_bytes == 4 * (t["num_hidden_layers"] - full) * per_seq_layer
    assert sum(d.kv_buffer_bytes for d in res.devices) == 2 * k_bytes  # -sm layer: each GPU its layers' cells
    assert r.fits and "command.gguf_mix" in {w.code for w in r.warnings}


def test_seed_vllm_qwen36_fp8_tp2_needs_what_vllms_own_code_says():
    """The issue's vLLM seed on 2x4090. Without --max-model-len vLLM takes max_position_embeddings (262144); the KV
    cache one such request needs per rank at TP 2 is what vLLM 0.33.0's own planner printed for this model
    (tests/data/vllm_oracle/v0.33.0.json, kv_cache_dtype auto: the FP8 checkpoint's KV cache is bf16 too); more
    than the GPU has left, so vLLM refuses (check_enough_kv_cache_memory), and the corrected command starts."""
    import re

    oracle = json.loads((Path(__file__).parent / "data" / "vllm_oracle" / "v0.33.0.json").read_text())
    (case,) = [c for c in oracle["cases"] if c["model"] == "Qwen/Qwen3.6-27B" and c["tp"] == 2
               and c["kv_cache_dtype"] == "auto"]
    (said,) = [re.search(r"\((\S+) GiB KV cache is needed", p["refusal"]).group(1) for p in case["plans"]
               if p.get("refusal")]
    for flag in ("--tensor-parallel-size 2", "--pipeline-parallel-size 2"):
        r = check_command(f"{V033} Qwen/Qwen3.6-27B-FP8 {flag}", "2x4090")
        (e,) = [e for e in r.result.errors if e.code == "vllm.kv.max_model_len"]
        assert f"max seq len ({QWEN36['max_position_embeddings']})" in e.text
        if flag.startswith("--tensor"):
            assert f"({said} GiB KV cache is needed" in e.text
        assert not r.fits and r.corrected_command and check_command(r.corrected_command, "2x4090").fits


def test_readme_counts_the_not_modelled_flags_as_they_are():
    n = {k: sum(c["class"] == "not_modelled" for c in flag_classes()[k].values())
         for k in ("vllm", "llamacpp", "llama_bench", "vllm_env", "vllm_env_model")}
    readme = " ".join((Path(__file__).parent.parent / "README.md").read_text().split())
    said = {k: "" if v == 1 else "s" for k, v in n.items()}  # "1 vLLM flag", "2 vLLM flags"
    assert (f"{n['vllm']} vLLM flag{said['vllm']}, {n['llamacpp']} llama-server / llama-cli flag{said['llamacpp']}, "
            f"{n['llama_bench']} llama-bench flag{said['llama_bench']} and {n['vllm_env']} `VLLM_*` "
            f"variable{said['vllm_env']}, plus {n['vllm_env_model']} that a model's own modules read outside "
            "`vllm/envs.py`") in readme


def test_flags_that_act_only_beside_a_not_modelled_flag():
    """A no_effect flag with only_with (the DBO thresholds, the DCP options, prefetch offloading's knobs, ...) is
    listed as no effect alone; beside the flag it depends on, each not modelled itself, it warns too, naming it."""
    for engine in ("vllm", "llamacpp", "llama_bench", "vllm_env"):
        classes = flag_classes()[engine]
        for name, c in classes.items():
            for master in c.get("only_with") or []:
                assert c["class"] == "no_effect" and c.get("note"), (engine, name)
                pool = flag_classes()["vllm" if engine == "vllm_env" else engine]
                # or a modelled flag some of whose values are not sized (--load-format fastsafetensors, beside
                # VLLM_FASTSAFETENSORS_QUEUE_SIZE): its note says so
                assert pool[master]["class"] == "not_modelled" or "not sized" in pool[master].get("note", ""), \
                    (engine, name, master)
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    _, alone = read_command(f"{base} --dbo-decode-token-threshold 64")
    assert alone.no_effect == ["--dbo-decode-token-threshold 64"] and not alone.warnings
    _, both = read_command(f"{base} --enable-dbo --dbo-decode-token-threshold 64")
    said = [w.text for w in both.warnings if w.code == "command.not_modelled"]  # --enable-dbo itself is modelled
    assert len(said) == 1 and said[0].startswith("--dbo-decode-token-threshold 64") and "--enable-dbo" in said[0]
    _, r = read_command(f"{base} --offload-prefetch-step 2 --offload-group-size 8")
    # the prefetch offloader's flags are modelled together (tests/test_vllm_prefetch_offload.py): no warning
    assert not r.warnings and r.options["offload_prefetch_step"] == 2 and r.options["offload_group_size"] == 8
    _, env = read_command(f"VLLM_DBO_COMM_SMS=20 {base}")
    assert env.no_effect == ["VLLM_DBO_COMM_SMS"] and not env.warnings
    _, env2 = read_command(f"VLLM_DBO_COMM_SMS=20 {base} --ubatch-size 2")
    assert [w.text.split(":")[0] for w in env2.warnings] == ["VLLM_DBO_COMM_SMS 20"]  # --ubatch-size is modelled


def test_every_class_says_why():
    """Each flag that is not simply modelled carries its reason; the audited no_effect ones name their source."""
    for engine in ("vllm", "llamacpp", "llama_bench", "vllm_env"):
        for name, c in flag_classes()[engine].items():
            if c["class"] in ("not_modelled", "upper_bound", "refused") or c.get("only_with"):
                assert c.get("note") or c.get("said"), (engine, name)
            if c["class"] == "refused":
                assert c.get("said") and c.get("replacement"), (engine, name)


def test_llama_bench_op_offload_and_load_mode_read_as_llama_servers():
    """tools/llama-bench/llama-bench.cpp (4df29be): -nopo 1 sets cparams.op_offload = false as llama-server's
    --no-op-offload does; -lm takes llama-server's load modes (auto, the default, and mmap change nothing)."""
    bench = "llama-bench -m Qwen3-8B-Q4_K_M.gguf -ngl 20"
    assert read_command(f"{bench} -nopo 1")[1].options["op_offload"] is False
    assert read_command(f"{bench} -nopo 0")[1].options["op_offload"] is True
    assert read_command(f"{bench} -lm none")[1].options["no_mmap"] is True
    assert read_command(f"{bench} -lm none")[1].options["no_mmap"] == read_command(f"{bench} -mmp 0")[1].options["no_mmap"]
    assert read_command(f"{bench} -lm mmap+mlock")[1].options["mlock"] is True
    assert read_command(f"{bench} -lm auto")[1].no_effect == ["-lm auto"]
    assert read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --no-op-offload")[1].options["op_offload"] is False


def test_mm_ipc_gpu_memory_gb_is_read_as_the_vramcalc_flag():
    r = check_command("vllm serve Qwen/Qwen3-VL-8B-Instruct --max-model-len 8192 --mm-ipc-gpu-memory-gb 2", "a100-80gb-sxm")
    assert r.options["mm_ipc_gpu_memory_gb"] == 2.0 and "--mm-ipc-gpu-memory-gb 2" in r.vramcalc_command
    code = main(r.vramcalc_command.split()[1:] + ["--json"])
    assert code in (0, 1)


def test_num_gpu_blocks_override_is_read_as_the_vramcalc_flag():
    r = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 1600 --num-gpu-blocks-override 101", "4090")
    assert r.options["num_gpu_blocks_override"] == 101 and r.result.num_gpu_blocks == 101
    assert "--num-gpu-blocks-override 101" in r.vramcalc_command and r.fits


@pytest.mark.parametrize("var,default,other", [
    # vllm/envs.py (0.34.0): the value each variable takes when unset
    ("VLLM_BATCH_INVARIANT", "0", "1"),
])
def test_env_values_listed_as_no_effect_are_the_release_defaults(var, default, other):
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    _, r = read_command(f"{var}={default} {base}")
    assert r.no_effect == [f"{var} {default}"] and not r.warnings
    _, r = read_command(f"{var}={other} {base}")
    assert [w.code for w in r.warnings] == ["command.not_modelled"] and r.warnings[0].text.startswith(var)


def test_variables_the_release_removed_are_refused_in_vllms_words():
    """vLLM 0.34.0 vllm/platforms/interface.py Platform.validate_environ (called by EngineArgs.create_engine_config):
    VLLM_MARLIN_INPUT_DTYPE (vllm/envs.py removed_environment_variables) set to anything, and VLLM_USE_V2_MODEL_RUNNER
    set to anything but 1, stop vLLM with a ValueError; VLLM_USE_V2_MODEL_RUNNER=1 is only warned about as redundant.
    A variable vLLM never had is listed as having no effect (vLLM warns it is unknown). With the image of 0.33.0,
    which read both, they are warned about as not modelled."""
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    assert vllm_table()["version"] == "0.34.0"
    assert not {"VLLM_MARLIN_INPUT_DTYPE", "VLLM_USE_V2_MODEL_RUNNER"} & set(vllm_table()["env"])
    for value in ("0", "2"):
        with pytest.raises(InputError, match=re.escape(
                f"ValueError: VLLM_USE_V2_MODEL_RUNNER={value} is no longer supported: Model Runner V1 has been "
                "removed. Unset this variable.")):
            read_command(f"VLLM_USE_V2_MODEL_RUNNER={value} {base}")
    _, r = read_command(f"VLLM_USE_V2_MODEL_RUNNER=1 {base}")
    assert r.no_effect == ["VLLM_USE_V2_MODEL_RUNNER 1 (removed in vLLM 0.34.0, which warns that it is redundant)"]
    assert not r.warnings
    for value in ("int8", "fp8"):
        with pytest.raises(InputError, match=re.escape(
                "ValueError: VLLM_MARLIN_INPUT_DTYPE has been removed. Marlin no longer supports 8-bit activations. "
                "Use `--quantization humming`")):
            check_command(f"VLLM_MARLIN_INPUT_DTYPE={value} {base}", "4090")
    _, r = read_command(f"VLLM_NOT_A_VARIABLE=1 {base}")
    assert r.no_effect == ["VLLM_NOT_A_VARIABLE (not a variable of vLLM 0.34.0)"] and not r.warnings
    for var in ("VLLM_USE_V2_MODEL_RUNNER", "VLLM_MARLIN_INPUT_DTYPE"):
        _, r = read_command(f"docker run --gpus all -e {var}=0 vllm/vllm-openai:v0.33.0 --model Qwen/Qwen3-8B")
        assert [w.code for w in r.warnings] == ["command.not_modelled"]
        assert r.warnings[0].text.startswith(f"{var} 0: a variable of vLLM 0.33.0, removed in 0.34.0")


ENV_REFUSALS = json.loads((Path(__file__).parent / "data" / "vllm_env_refusal_oracle_v0.34.0.json").read_text())


@pytest.mark.parametrize("case", ENV_REFUSALS["cases"], ids=lambda c: f"{c['name']}={c['value']}")
def test_env_values_vllm_refuses_are_refused_in_its_words(case):
    """Against vLLM 0.34.0's own code run on CPU (tools/vllm_env_refusal_oracle.py): a value an env_with_choices
    variable does not take (command_flags.json choices, case_sensitive), and the variables 0.34.0 removed
    (vllm_env_removed), stop the command with vLLM's ValueError, word for word; the values vLLM takes are read."""
    assert ENV_REFUSALS["release"] == vllm_table()["version"]
    command = f"{case['name']}={shlex.quote(case['value'])} vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    if case["error"]:
        with pytest.raises(InputError) as e:
            read_command(command)
        assert str(e.value) == case["error"]
    else:
        _, r = read_command(command)
        field = flag_classes()["vllm_env"].get(case["name"], {}).get("field")  # a modelled variable: read as its option
        assert any(n.startswith(case["name"]) for n in r.no_effect) or \
            any(w.text.startswith(case["name"]) for w in r.warnings) or (field is not None and field in r.options)


def test_mamba_cache_dtypes_are_read_as_the_vramcalc_flags():
    base = "vllm serve Qwen/Qwen3-Next-80B-A3B-Thinking -tp 4 --max-model-len 32768"
    r = check_command(f"{base} --mamba-ssm-cache-dtype float32", "4xh100")
    default = check_command(base, "4xh100")
    assert r.options["mamba_ssm_cache_dtype"] == "float32" and "--mamba-ssm-cache-dtype float32" in r.vramcalc_command
    assert r.result.kv_cache_tokens < default.result.kv_cache_tokens  # a larger state page, fewer blocks
    assert read_command(f"{base} --mamba-cache-dtype auto")[1].options["mamba_cache_dtype"] == "auto"
    assert main(r.vramcalc_command.split()[1:]) in (0, 1)


def test_disable_hybrid_kv_cache_manager_is_read_as_the_vramcalc_flag():
    base = "vllm serve google/gemma-3-27b-it --max-model-len 32768 --language-model-only"
    r, on = check_command(f"{base} --disable-hybrid-kv-cache-manager", "h100"), check_command(base, "h100")
    assert r.options["disable_hybrid_kv_cache_manager"] is True and "--disable-hybrid-kv-cache-manager" in r.vramcalc_command
    assert r.result.kv_cache_tokens < on.result.kv_cache_tokens
    assert read_command(f"{base} --enable-hybrid-kv-cache-manager")[1].no_effect == ["--enable-hybrid-kv-cache-manager"]


def test_download_program_flags_are_refused_by_the_programs_vramcalc_reads():
    """common/arg.cpp (4df29be): --mtp, --dflash and --eagle3 are LLAMA_EXAMPLE_DOWNLOAD's only."""
    for flag in ("--mtp", "--dflash", "--eagle3"):
        for program in ("llama-server", "llama-cli"):
            with pytest.raises(InputError, match=f"^{program}: error: invalid argument: {flag}$"):
                read_command(f"{program} -m Qwen3-8B-Q4_K_M.gguf {flag}")


def test_vllm_pp_layer_partition_places_the_layers():
    """vllm/distributed/utils.py get_pp_indices (0.33.0): VLLM_PP_LAYER_PARTITION gives each stage its layers
    (as many as PP, summing to the layers, else ValueError); Qwen3-8B's 36 layers as 20 + 16 put two more layers'
    weights and KV on stage 0 than the even 18 + 18."""
    base = "vllm serve Qwen/Qwen3-8B -pp 2 --max-model-len 8192"
    even, split = check_command(base, "2x4090"), check_command(f"VLLM_PP_LAYER_PARTITION=20,16 {base}", "2x4090")
    assert split.options["pp_layer_partition"] == (20, 16)
    assert all(w.code != "command.not_modelled" for w in split.warnings)
    assert "--pp-layer-partition 20,16" in split.vramcalc_command
    assert split.result.command.startswith("VLLM_PP_LAYER_PARTITION=20,16 vllm serve")
    w_even = [d.weights_bytes for d in even.result.devices]
    w_split = [d.weights_bytes for d in split.result.devices]
    layer = (w_split[0] - w_even[0]) // 2
    assert layer > 0 and w_even[1] - w_split[1] == 2 * layer  # the same decoder layers moved
    assert main(split.vramcalc_command.split()[1:]) in (0, 1)
    for bad, said in (("20,10,6", "len(partitions)=3 does not match pp_size=2"),
                      ("20,20", "sum(partitions)=40 does not match num_hidden_layers=36"),
                      ("20,x", "Invalid partition string: 20,x")):
        with pytest.raises(InputError, match=re.escape(said)):
            check_command(f"VLLM_PP_LAYER_PARTITION={bad} {base}", "2x4090")


def test_mm_encoder_tp_mode_is_read_as_the_vramcalc_flag():
    r = check_command("vllm serve Qwen/Qwen3-VL-8B-Instruct -tp 2 --max-model-len 8192 --mm-encoder-tp-mode data",
                      "2xa100-80gb-sxm")
    assert r.options["mm_encoder_tp_mode"] == "data" and "--mm-encoder-tp-mode data" in r.vramcalc_command
    assert "--mm-encoder-tp-mode data" in r.result.command
    assert read_command("vllm serve Qwen/Qwen3-VL-8B-Instruct --mm-encoder-tp-mode weights")[1].options == \
        {"mm_encoder_tp_mode": "weights"}


def test_cudagraph_size_flags_are_read_as_the_vramcalc_flags():
    """--cudagraph-capture-sizes (nargs +), --max-cudagraph-capture-size and --performance-mode, and the
    compilation-config keys of the same names (-cc JSON and -cc.key=value); flag and key together are vLLM's
    ValueError (v0.30.0 vllm/engine/arg_utils.py EngineArgs.create_engine_config)."""
    r = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --cudagraph-capture-sizes 1 2 4 8 "
                      "--performance-mode interactivity", "4090")
    assert r.options["cudagraph_capture_sizes"] == (1, 2, 4, 8) and r.options["performance_mode"] == "interactivity"
    assert "--cudagraph-capture-sizes 1 2 4 8 --performance-mode interactivity" in r.vramcalc_command
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    cc = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 -cc.max_cudagraph_capture_size=64", "4090")
    flag = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --max-cudagraph-capture-size 64", "4090")
    assert cc.options["max_cudagraph_capture_size"] == 64 == flag.options["max_cudagraph_capture_size"]
    assert cc.result.devices[0].cuda_graph_bytes == flag.result.devices[0].cuda_graph_bytes
    js = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 "
                       "--compilation-config '{\"cudagraph_capture_sizes\": [1, 2, 4, 8]}'", "4090")
    assert js.options["cudagraph_capture_sizes"] == (1, 2, 4, 8)
    with pytest.raises(InputError, match="max_cudagraph_capture_size and compilation_config"
                                         ".max_cudagraph_capture_size are mutually exclusive"):
        check_command("vllm serve Qwen/Qwen3-8B -cc.max_cudagraph_capture_size=16 --max-cudagraph-capture-size 16",
                      "4090")
    bad = check_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --cudagraph-capture-sizes 1 2 "
                        "--max-cudagraph-capture-size 4", "4090")
    assert not bad.fits and "vllm.cudagraph.sizes_inconsistent" in [e.code for e in bad.result.errors]


def test_kv_offloading_flags_are_read_as_the_vramcalc_flags():
    base = "vllm serve google/gemma-3-4b-it --max-model-len 32768"
    r = check_command(f"{base} --kv-offloading-size 64 --kv-offloading-backend lmcache", "4090")
    off = check_command(f"{base} --disable-hybrid-kv-cache-manager", "4090")
    assert r.options["kv_offloading_size"] == 64.0 and r.options["kv_offloading_backend"] == "lmcache"
    assert "--kv-offloading-size 64" in r.vramcalc_command and r.result.kv_cache_tokens == off.result.kv_cache_tokens
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    assert "vllm.kv_offload.host_memory" in [w.code for w in r.result.warnings]


def test_disable_sliding_window_is_read_as_the_vramcalc_flag():
    """--disable-sliding-window: the length capped at the window, a longer --max-model-len refused in vLLM's words
    (v0.30.0 vllm/config/model.py _get_and_verify_max_len: max_len_key sliding_window); tests/test_vllm_oracle.py
    pins the pool against vLLM's planner."""
    r = check_command("vllm serve google/gemma-3-1b-it --disable-sliding-window", "4090")
    assert r.options["disable_sliding_window"] is True and "--disable-sliding-window" in r.vramcalc_command
    assert r.result.max_model_len == 512 and r.fits
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    long = check_command("vllm serve google/gemma-3-1b-it --disable-sliding-window --max-model-len 4096", "4090")
    (e,) = [e for e in long.result.errors if e.code == "vllm.max_model_len.exceeds_model"]
    assert "the derived max_model_len (sliding_window=512.0 or model_max_length=None" in e.text


def test_embedding_pooling_rerank_and_the_remaining_presets_as_arg_cpp_sets_them():
    # common/arg.cpp (4df29be): --rerank sets params.embedding = true, pooling_type = LLAMA_POOLING_TYPE_RANK
    _, rr = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --rerank -c 8192")
    _, both = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --embedding --pooling rank -c 8192")
    assert rr.options == both.options and rr.options["embedding"] is True and rr.options["pooling"] == "rank"
    assert not rr.warnings and not rr.no_effect
    with pytest.raises(InputError, match='"--pooling": invalid value'):  # its lambda throws "invalid value"
        read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --pooling max")
    # --embd-gemma-default: the EmbeddingGemma file, -ub 2048 -b 2048, 32 slots, n_ctx = 2048 x 32, embeddings on
    _, eg = read_command("llama-server --embd-gemma-default")
    assert eg.model == "hf:ggml-org/embeddinggemma-300M-qat-q4_0-GGUF::embeddinggemma-300M-qat-Q4_0.gguf"
    assert {k: eg.options[k] for k in ("n_ubatch", "n_batch", "n_parallel", "n_ctx", "embedding")} == {
        "n_ubatch": 2048, "n_batch": 2048, "n_parallel": 32, "n_ctx": 65536, "embedding": True}
    assert not [w for w in eg.warnings if w.code == "command.not_modelled"]
    # --vision-gemma-4b-default: hf_repo ggml-org/gemma-3-4b-it-qat-GGUF, port 8014, n_ctx = 0, jinja
    _, vg = read_command("llama-server --vision-gemma-4b-default")
    assert vg.model.startswith("hf:ggml-org/gemma-3-4b-it-qat-GGUF") and "n_ctx" in vg.options
    assert vg.options["n_ctx"] is None and vg.no_effect == ["--port 8014", "--jinja"]
    # --spec-default: speculative.types += NGRAM_MOD (n_match 24, n_min 48, n_max 64): no draft model loaded
    _, sd = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192 --spec-default")
    assert sd.options == {**read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192")[1].options,
                          "spec_types": ("ngram-mod",), "spec_ngram_mod_n_max": 64}
    assert [w.code for w in sd.warnings] == ["command.speed_not_estimated"]  # ngram-mod's speed-up is not estimated
    assert sd.no_effect == ["--spec-ngram-mod-n-match 24", "--spec-ngram-mod-n-min 48"]


def test_fit_target_and_fit_ctx_are_read_and_have_no_effect_with_fit_off():
    # common/arg.cpp --fit-target: "MiB0,MiB1,..." split by , and /; --fit-ctx N
    _, r = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf -fitt 2048/512 --fit-ctx 8192")
    assert r.options == {"fit_target_mib": (2048, 512), "fit_min_ctx": 8192} and not r.warnings
    _, off = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf -ngl 99 -c 4096 --fit off -fitt 2048")
    assert "fit_target_mib" not in off.options and "-fitt 2048" in off.no_effect


def test_no_host_is_read_by_llama_server_and_llama_bench():
    _, r = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --no-host --no-mmap")
    assert r.options == {"no_host": True, "no_mmap": True} and not r.warnings
    _, b = read_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf --no-host 1")  # tools/llama-bench: --no-host <0|1>
    assert b.options["no_host"] is True
    assert read_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf --no-host 0")[1].options["no_host"] is False


def test_override_kv_of_tokenizer_flags_has_no_effect_and_of_unread_keys_warns():
    # src/llama-vocab.cpp reads tokenizer.ggml.tokens with gguf_find_key (no override); the flags and token ids
    # named in src/llama-arch.cpp LLM_KV_TOKENIZER_* change no buffer. The keys vramcalc reads go to the check
    # (tests/test_llamacpp_kv_overrides.py: against a real llama.cpp's loads with overrides)
    _, r = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --override-kv "
                        "tokenizer.ggml.add_bos_token=bool:false,tokenizer.ggml.add_eos_token=bool:false")
    assert r.no_effect == ["--override-kv tokenizer.ggml.add_bos_token=bool:false,tokenizer.ggml.add_eos_token=bool:false"]
    assert not r.warnings
    _, r = read_command("llama-server -m Qwen3-8B-Q4_K_M.gguf --override-kv qwen3moe.expert_used_count=int:4")
    assert r.options["kv_overrides"] == ("qwen3moe.expert_used_count=int:4",) and not r.warnings
    for kv in ("tokenizer.ggml.add_bos_token=bool:false,general.architecture=str:x", "tokenizer.ggml.model=str:none"):
        (w,) = read_command(f"llama-server -m Qwen3-8B-Q4_K_M.gguf --override-kv {kv}")[1].warnings
        assert w.code == "command.not_modelled"


def test_llama_bench_embd_keeps_embeddings_and_every_prompt_token_as_an_output():
    """tools/llama-bench/llama-bench.cpp (4df29be): -embd 1 sets cparams.embeddings as llama-server's --embedding does;
    test_prompt decodes llama_batch_get_one chunks of min(-b, -p) tokens with batch.logits unset, and an embeddings
    context outputs every token (src/llama-context.cpp llama_context::decode output_all), so output_reserve grows the
    host output buffer to (n_vocab + n_embd) floats x that many rows (output_reserve: logits.size + embd.size)."""
    from vramcalc.sources.catalog import load

    spec = load("qwen3-8b")
    _, r = read_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf -embd 1")
    assert r.options["embedding"] is True and r.options["n_outputs_run"] == 512  # -p 512, -b 2048
    assert read_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf -embd 1 -p 4096 -b 1024")[1].options["n_outputs_run"] == 1024
    assert read_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf -embd 0")[1].no_effect == ["-embd 0"]
    host = lambda c: check_command(c, "4090").result.devices[-1]  # noqa: E731
    emb, base = host("llama-bench -m Qwen3-8B-Q4_K_M.gguf -embd 1"), host("llama-bench -m Qwen3-8B-Q4_K_M.gguf")
    assert emb.device == base.device == "host RAM"
    assert emb.output_buffer_bytes == (spec.vocab_size + spec.hidden_size) * 512 * 4
    assert base.output_buffer_bytes == spec.vocab_size * 1 * 4  # one logits row: the last token of each batch


def test_llama_bench_fit_target_runs_fit_with_ngl_split_and_overrides_reset():
    """tools/llama-bench/llama-bench.cpp main (4df29be): a -fitt or -fitc other than 0 runs common_fit_params with
    -fitt MiB on every device, after resetting -ngl to the default, the tensor split to zeros and the overrides
    (-ot, -ncmoe) to none; the context -p + -n + -d is kept. That is llama-server's --fit with -ngl auto and that
    margin on the same context: the same check."""
    cmd = "llama-bench -m Qwen3-32B-Q4_K_M.gguf -p 512 -n 128 -fitt 2048 -ngl 99 -ts 1 -ot exps=CPU"
    _, r = read_command(cmd)
    assert r.options["fit_target_mib"] == (2048,) and "n_gpu_layers" not in r.options and "tensor_split" not in r.options
    assert r.no_effect == ["-ngl 99", "-ts 1", "-ot exps=CPU"]
    bench = check_command(cmd, "rtx4070").result
    same = vramcalc.check("qwen3-32b", "rtx4070", engine="llamacpp", quant="gguf:Q4_K_M", n_ctx=640, n_parallel=1,
                          program="llama-bench", fit_target_mib=(2048,))
    assert 0 < bench.n_gpu_layers < 65 and bench.n_gpu_layers == same.n_gpu_layers
    gpu, card = bench.devices[0], vramcalc.gpus.find_gpu("rtx4070")
    assert gpu.available_bytes == same.devices[0].available_bytes == (card.usable_bytes or card.memory_bytes) - 2048 * 2**20
    assert [d.total_bytes for d in bench.devices] == [d.total_bytes for d in same.devices]
    # -fitc alone: fit with a 0 MiB margin, which vramcalc raises to its 1024 MiB and says so
    alone = check_command("llama-bench -m Qwen3-32B-Q4_K_M.gguf -fitc 4096", "rtx4070").result
    assert alone.n_gpu_layers < 65 and "llamacpp.fit.target_below_margin" in [w.code for w in alone.warnings]
    assert read_command("llama-bench -m Qwen3-8B-Q4_K_M.gguf -fitt 0 -fitc 0")[1].options["n_gpu_layers"] == "all"


def test_control_vector_tensors_sit_on_their_layers_devices_as_llama_adapter_cvec_makes_them(capsys):
    """src/llama-adapter.cpp llama_adapter_cvec::init (4df29be): one F32 tensor of n_embd for each layer 1 .. n_layer-1,
    in select_buft(il), the layer's GPU or, for a CPU layer, the GPU's host buffer type (src/llama-model.cpp
    load_tensors: layer il is on the CPU below i_gpu_start = n_layer + 1 - ngl); the files are summed into one vector
    (common/common.cpp common_control_vector_load), so three files make the same buffers as one. Nothing prints this
    buffer: the oracle is the count the pinned source makes, here written out for Qwen3-8B (36 layers, n_embd 4096:
    16 KiB per tensor, already a multiple of the 128-byte CUDA and 32-byte CPU alignments)."""
    base = "llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192"
    one = 4096 * 4
    r = check_command(f"{base} --control-vector a.gguf,b.gguf --control-vector-scaled c.gguf:0.5", "4090")
    assert r.options["control_vectors"] == ("a.gguf", "b.gguf", "c.gguf:0.5")
    gpu, host = r.result.devices
    assert (gpu.control_vector_bytes, host.control_vector_bytes) == (35 * one, 0)
    plain = check_command(base, "4090").result.devices[0]
    assert gpu.total_bytes - plain.total_bytes == 35 * one  # the compute buffer is the same (its adds run in place)
    # -ngl 20: i_gpu_start = 36 + 1 - 20 = 17, so layers 1..16 are CPU layers (CUDA_Host), 17..35 on the GPU
    gpu, host = check_command(f"{base} -ngl 20 --control-vector a.gguf", "4090").result.devices
    assert (gpu.control_vector_bytes, host.control_vector_bytes) == (19 * one, 16 * one)
    # -sm layer over two equal GPUs: splits [0.5, 1], block il on the first while il / 37 < 0.5 (upper_bound), so
    # blocks 0..18 there (layers 1..18 have a tensor) and 19..35 on the second
    a, b, _ = check_command(f"{base} --control-vector a.gguf", "2x4090").result.devices
    assert (a.control_vector_bytes, b.control_vector_bytes) == (18 * one, 17 * one)
    with pytest.raises(InputError, match="control-vector-scaled format: FNAME:SCALE"):
        read_command(f"{base} --control-vector-scaled c.gguf")
    assert main(r.vramcalc_command.split()[1:]) == 0
    assert "control vector a.gguf,b.gguf,c.gguf:0.5: 35 F32 tensors of 4096" in capsys.readouterr().out
    assert "--control-vector a.gguf --control-vector b.gguf --control-vector-scaled c.gguf:0.5" in r.result.command


def test_spec_type_ngram_mod_reserves_the_drafted_rows_and_its_host_table():
    """tools/server/server-context.cpp server_output_limits (4df29be): n_outputs_max = min(n_batch, n_parallel x
    (1 + n_max)), n_max from common/speculative.cpp common_speculative_n_max (ngram-mod: --spec-ngram-mod-n-max,
    common.h default 64); the worst-case graph computes that many logits rows (src/llama-context.cpp graph_reserve
    with min(n_tokens, n_outputs_max) outputs: the allocator replay, checked on real buffers at one row per slot,
    tests/data/llamacpp_server_runs.json, and at n_ubatch rows, tests/data/llamacpp_runs.json), and the output buffer
    grows to them when drafts are verified (output_reserve: n_vocab floats a row). ngram-mod's table: 4M int32
    entries (common_speculative_impl_ngram_mod). The draft types and the other ngram types stay not modelled."""
    from vramcalc.sources.catalog import load

    vocab = load("qwen3-8b").vocab_size
    base = "llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192"
    plain, mod = check_command(base, "4090"), check_command(f"{base} --spec-type ngram-mod", "4090")
    assert mod.options["spec_types"] == ("ngram-mod",)
    opts = LlamaOptions(n_ctx=8192, spec_types=("ngram-mod",))
    assert (opts.n_parallel, opts.outputs_reserved) == (4, 4 * 65)  # -np auto: 4 slots
    assert LlamaOptions(n_batch=128, spec_types=("ngram-mod",)).outputs_reserved == 128  # at most n_batch
    assert LlamaOptions(n_parallel=2, spec_types=("ngram-mod",), spec_ngram_mod_n_max=16).outputs_reserved == 34
    host, host0 = mod.result.devices[-1], plain.result.devices[-1]
    assert (host.output_buffer_bytes, host0.output_buffer_bytes) == (vocab * 260 * 4, vocab * 4 * 4)
    assert host.speculative_bytes == 4 * 1024 * 1024 * 4 and host0.speculative_bytes == 0
    assert mod.result.devices[0].compute_buffer_bytes > plain.result.devices[0].compute_buffer_bytes + vocab * 4 * 100
    n16 = check_command(f"{base} --spec-type ngram-mod --spec-ngram-mod-n-max 16", "4090").result.devices[-1]
    assert n16.output_buffer_bytes == vocab * 4 * 17 * 4
    with pytest.raises(InputError, match="ngram n-max must be between 0 and 1024 inclusive"):
        read_command(f"{base} --spec-ngram-mod-n-max 2000")
    assert main(mod.vramcalc_command.split()[1:] + ["--json"]) == 0
    assert "--spec-type ngram-mod" in mod.result.command
    # every type llama.cpp takes is modelled: a list of them is read whole (only speed is warned about)
    _, rd = read_command(f"{base} --spec-type ngram-mod,draft-eagle3,draft-dspark")
    assert rd.options["spec_types"] == ("ngram-mod", "draft-eagle3", "draft-dspark")
    assert {w.code for w in rd.warnings} == {"command.speed_not_estimated"}
    # draft-mtp is modelled: a model without MTP layers (Qwen3-8B) is refused as llama.cpp refuses it
    (e,) = [e for e in check_command(f"{base} --spec-type draft-mtp", "4090").result.errors
            if e.code == "llamacpp.spec.no_mtp"]
    assert e.code == "llamacpp.spec.no_mtp" and "doesn't contain MTP layers" in e.text
    assert read_command(f"{base} --spec-type none")[1].no_effect == ["--spec-type none"]
    # common_speculative_types_from_names (4df29be): none in a list is none alone; a later --spec-type appends
    assert read_command(f"{base} --spec-type none,ngram-mod")[1].no_effect == ["--spec-type none,ngram-mod"]
    later = read_command(f"{base} --spec-type ngram-mod --spec-type none")[1]
    assert later.options["spec_types"] == ("ngram-mod",) and later.no_effect == ["--spec-type none"]
    with pytest.raises(InputError, match='error while handling argument "--spec-type": unknown speculative type: x'):
        read_command(f"{base} --spec-type ngram-mod,x")
    # a map type's size_m is its n_max with that type (test_spec_type_ngram_map_and_draft_types_...); alone, nothing
    assert read_command(f"{base} --spec-ngram-simple-size-m 10")[1].no_effect == ["--spec-ngram-simple-size-m 10"]



def test_spec_type_ngram_map_cache_and_draft_simple_as_llama_cpp_4df29be_sizes_them():
    """llama.cpp 4df29be (the tree llama-cpp-python 0.3.35 vendors): common/speculative.cpp common_speculative_n_max
    takes draft-simple's --spec-draft-n-max (common.h draft.n_max 3), ngram-simple / -map-k / -map-k4v's size_m
    (common.h 48, common/arg.cpp 1..1024: 'ngram size M must be between 1 and 1024 inclusive'), ngram-cache's 8
    (create_state_ngram_cache), the largest of the listed types; server_output_limits reserves n_parallel x (1 + it)
    rows. common/ngram-map.h: a common_ngram_map resizes key_map to COMMON_NGRAM_HASH_MAP_SIZE (262144) uint32, and
    common_speculative_impl_ngram_map_k keeps one map per slot. common_speculative_impl_draft_simple throws without a
    draft context, and since PR #23988 a draft model drafts only with --spec-type draft-simple (load_model frees it
    when common_speculative_init makes no type)."""
    from vramcalc.sources.catalog import load

    vocab = load("qwen3-8b").vocab_size
    base = "llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192"
    host = lambda cmd: check_command(f"{base} {cmd}", "4090").result.devices[-1]  # noqa: E731
    # -np auto: 4 slots; the output buffer grows to the rows verified at once
    for cmd, rows, table in (("--spec-type ngram-simple --spec-ngram-simple-size-m 10", 4 * 11, 0),
                             ("--spec-type ngram-map-k", 4 * 49, 4 * 262144 * 4),
                             ("-np 2 --spec-type ngram-map-k4v --spec-ngram-map-k4v-size-m 100", 2 * 101, 2 * 262144 * 4),
                             ("--spec-type ngram-cache", 4 * 9, 0),
                             ("--spec-type ngram-simple,ngram-mod", 4 * 65, 4 * 1024 * 1024 * 4),
                             ("-md Qwen3-0.6B-Q8_0.gguf --spec-type draft-simple --spec-draft-n-max 7", 4 * 8, 0)):
        h = host(cmd)
        assert (h.output_buffer_bytes, h.speculative_bytes) == (vocab * rows * 4, table), cmd
    # a map type's size_m counts only with its own type
    _, r = read_command(f"{base} --spec-type ngram-map-k --spec-ngram-simple-size-m 500 --spec-ngram-map-k-size-m 5")
    assert r.options["spec_ngram_map_k_size_m"] == 5 and r.no_effect == ["--spec-ngram-simple-size-m 500"]
    with pytest.raises(InputError, match="ngram size M must be between 1 and 1024 inclusive"):
        read_command(f"{base} --spec-type ngram-map-k --spec-ngram-map-k-size-m 0")
    def codes(cmd: str) -> set[str]:  # the reading's and the engine's warnings
        c = check_command(f"{base} {cmd}", "4090")
        return {w.code for w in [*c.warnings, *c.result.warnings]}

    assert {"llamacpp.spec.host_table_grows", "command.speed_not_estimated"} <= codes("--spec-type ngram-map-k4v")
    assert "llamacpp.spec.host_table_grows" not in codes("--spec-type ngram-simple")
    # draft-simple without -md: no speculation, the rows still reserved
    assert "llamacpp.spec.no_draft" in codes("--spec-type draft-simple")
    assert host("--spec-type draft-simple").output_buffer_bytes == vocab * 4 * 4 * 4
    # -md alone: loaded, counted, drafts nothing at 4df29be; before PR #23988 (release b9464) it drafted
    alone = check_command(f"{base} -np 1 -md Qwen3-0.6B-Q8_0.gguf", "4090")
    (d,) = [e for e in alone.result.extras if e.kind == "draft"]
    assert not d.detail["speculates"] and d.gpu_bytes[0] > 0
    assert "llamacpp.draft.unused" in codes("-np 1 -md Qwen3-0.6B-Q8_0.gguf")
    assert alone.result.devices[-1].output_buffer_bytes == vocab * 1 * 4
    from vramcalc.gpus import find_gpu
    from vramcalc.llamacpp.engine import check_llamacpp

    for build, speculates in (("b9292", True), ("latest", False)):
        res = check_llamacpp(load("qwen3-8b"), [find_gpu("4090")], LlamaOptions(
            ftype="Q4_K_M", n_ctx=8192, n_parallel=1, model_draft="Qwen3-0.6B-Q8_0.gguf", build=build), None)
        (d,) = [e for e in res.extras if e.kind == "draft"]
        assert bool(d.detail["speculates"]) is speculates, build
        assert ("llamacpp.draft.unused" in {w.code for w in res.warnings}) is not speculates, build
    drafted = check_command(f"{base} -np 1 -md Qwen3-0.6B-Q8_0.gguf --spec-type draft-simple", "4090")
    assert drafted.result.speed is not None and alone.result.speed is not None
    assert "draft" in drafted.result.speed.terms_ms and "draft" not in alone.result.speed.terms_ms

def test_draft_override_tensor_places_the_drafts_tensors_as_ot_places_the_targets():
    """common/speculative.cpp common_base_params_to_speculative (4df29be): the draft loads with -otd's overrides
    (parse_tensor_buffer_overrides, as -ot) and never the target's -ot. vramcalc places them with the -ot rules its
    real logs check (tests/data/llamacpp_dev_gpus.json, llamacpp_dev_more.json): the draft's share is that of the
    draft model checked alone with -ot, and an override (like -ot) turns pipeline parallelism off for its context
    (src/llama-context.cpp: no tensor overrides)."""
    from vramcalc.gguf_mix import plan_gguf
    from vramcalc.gpus import find_gpu
    from vramcalc.llamacpp.engine import check_llamacpp
    from vramcalc.sources.catalog import load

    base = "llama-server -m Qwen3-8B-Q4_K_M.gguf -c 4096 -np 1 -md Qwen3-0.6B-Q8_0.gguf"
    draft = lambda c: next(e for e in check_command(c, "2x4090").result.extras if e.kind == "draft")  # noqa: E731
    plain, moved = draft(base), draft(f"{base} -otd 'blk\\.[0-9]\\.=CUDA1'")
    assert read_command(f"{base} -otd 'blk\\.[0-9]\\.=CUDA1'")[1].options["override_tensor_draft"] == (
        "blk\\.[0-9]\\.=CUDA1",)
    assert draft(f"{base} -ot 'blk\\.[0-9]\\.=CUDA1'").gpu_bytes == plain.gpu_bytes  # -ot is the target's alone
    spec, g = load("qwen3-0.6b"), find_gpu("4090")
    alone = check_llamacpp(spec, [g, g], LlamaOptions(n_ctx=4096, n_parallel=1, n_gpu_layers=99, n_outputs_max=1,
                                                      override_tensor=("blk\\.[0-9]\\.=CUDA1",)),
                           plan_gguf(spec, "Q8_0"), solve=False)
    assert moved.gpu_bytes == [d.total_bytes for d in alone.devices[:2]]
    assert moved.gpu_bytes[1] > plain.gpu_bytes[1] and moved.gpu_bytes[0] < plain.gpu_bytes[0]


def test_hf_overrides_is_read_as_the_vramcalc_flag():
    """--hf-overrides JSON, and its dotted keys merged into one object (FlexibleArgumentParser), applied to the
    config before it is sized; tests/test_vllm_flag_oracle.py pins the figures against vLLM 0.30.0's planner."""
    r = check_command("vllm serve Qwen/Qwen3-0.6B --hf-overrides '{\"num_hidden_layers\": 4}'", "4090")
    dotted = check_command("vllm serve Qwen/Qwen3-0.6B --hf-overrides.num_hidden_layers 4", "4090")
    plain = check_command("vllm serve Qwen/Qwen3-0.6B", "4090")
    assert r.options["hf_overrides"] == dotted.options["hf_overrides"] == {"num_hidden_layers": 4}
    assert "--hf-overrides '{\"num_hidden_layers\":4}'" in r.vramcalc_command and not r.warnings
    assert r.result.kv_cache_tokens == dotted.result.kv_cache_tokens > 6 * plain.result.kv_cache_tokens
    assert r.result.model.params_total < plain.result.model.params_total
    assert main(shlex.split(r.vramcalc_command)[1:] + ["--json"]) == 0
    with pytest.raises(NotModelledError, match="--hf-overrides hidden_act: not modelled"):
        check_command("vllm serve Qwen/Qwen3-0.6B --hf-overrides '{\"hidden_act\": \"gelu\"}'", "4090")


def test_decode_context_parallel_size_is_read_as_the_vramcalc_flag():
    """-dcp / --decode-context-parallel-size: each request's KV dealt over the DCP ranks, so the same blocks hold
    twice the tokens at DCP 2; vLLM's refusals in its words (tests/test_vllm_flag_oracle.py pins both against
    vLLM 0.30.0's planner)."""
    base = "vllm serve deepseek-ai/DeepSeek-V2-Lite -tp 2 --max-model-len 32768"
    r = check_command(f"{base} -dcp 2", "2xh100")
    plain = check_command(base, "2xh100")
    assert r.options["decode_context_parallel_size"] == 2 and not r.warnings
    assert "--decode-context-parallel-size 2" in r.vramcalc_command
    assert r.result.num_gpu_blocks == plain.result.num_gpu_blocks
    assert abs(r.result.kv_cache_tokens - 2 * plain.result.kv_cache_tokens) <= 2
    assert main(shlex.split(r.vramcalc_command)[1:] + ["--json"]) == 0
    bad = check_command("vllm serve Qwen/Qwen3-8B -tp 2 --decode-context-parallel-size 2", "2xh100")
    assert not bad.result.fits and [e.code for e in bad.result.errors] == ["vllm.dcp.kv_heads"]


def test_enable_eplb_and_eplb_config_are_read_as_the_vramcalc_flags():
    """--enable-eplb with --eplb-config (JSON or its dotted keys): the redundant experts per EP rank and EplbState's
    tensors in the weights; vLLM's refusals in its words (tests/test_vllm_flag_oracle.py pins both against vLLM
    0.30.0's own code)."""
    base = "vllm serve Qwen/Qwen3-30B-A3B -tp 4 --enable-expert-parallel --max-model-len 32768"
    r = check_command(f"{base} --enable-eplb --eplb-config '{{\"num_redundant_experts\": 4}}'", "4xh100")
    dotted = check_command(f"{base} --enable-eplb --eplb-config.num_redundant_experts 4", "4xh100")
    plain = check_command(base, "4xh100")
    assert r.options["enable_eplb"] is True and r.options["eplb_config"] == dotted.options["eplb_config"] == \
        {"num_redundant_experts": 4}
    assert "--enable-eplb" in r.vramcalc_command and not r.warnings
    assert r.result.devices[0].weights_bytes == dotted.result.devices[0].weights_bytes > \
        plain.result.devices[0].weights_bytes
    assert main(shlex.split(r.vramcalc_command)[1:] + ["--json"]) == 0
    off = check_command(f"{base} --enable-eplb --disable-eplb", "4xh100")
    assert off.result.devices[0].weights_bytes == plain.result.devices[0].weights_bytes
    bad = check_command(f"{base} --eplb-config.num_redundant_experts 4", "4xh100")
    assert [e.code for e in bad.result.errors] == ["vllm.eplb.not_enabled"]


def test_mla_disable_is_read_as_the_vramcalc_flag():
    """VLLM_MLA_DISABLE=1: the full per-head K and V of each MLA layer (tests/test_vllm_oracle.py pins the pool against
    vLLM 0.33.0's planner); 0 is the default (vllm/envs.py bool(int(...)))."""
    base = "vllm serve deepseek-ai/DeepSeek-V2-Lite --max-model-len 8192"
    r = check_command(f"VLLM_MLA_DISABLE=1 {base}", "h100")
    on = check_command(base, "h100")
    assert r.options["mla_disable"] is True and "--mla-disable" in r.vramcalc_command
    assert r.result.command.startswith("VLLM_MLA_DISABLE=1 vllm serve")
    # 16 heads x (128 + 64) for K and for V against one 512 + 64 latent: 32 / 3 times the bytes per token
    assert abs(on.result.kv_cache_tokens / r.result.kv_cache_tokens - 32 * 192 / 576) < 0.01
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    assert read_command(f"VLLM_MLA_DISABLE=0 {base}")[1].options["mla_disable"] is False


def test_memory_profiler_estimate_cudagraphs_0_is_read_as_the_vramcalc_flag():
    """VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 (v0.33.0 vllm/v1/worker/gpu_worker.py determine_available_memory:
    cudagraph_memory_estimate_applied = 0): the KV budget keeps the graph estimate, the graphs are captured outside it."""
    # 0.8 leaves the graphs room outside the budget at the graph term's upper end (data/vllm.json)
    base = f"{V033} Qwen/Qwen3-8B --max-model-len 8192 --gpu-memory-utilization 0.8"
    on = check_command(base, "4090")
    r = check_command(f"VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 {base}", "4090")
    assert r.options["estimate_cudagraphs"] is False and "--no-estimate-cudagraphs" in r.vramcalc_command
    assert r.result.command.startswith("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 vllm serve")
    d, d0 = r.result.devices[0], on.result.devices[0]
    assert d0.cuda_graph_bytes > 0 and d.cuda_graph_bytes == 0
    assert abs(d.kv_cache_bytes - d0.kv_cache_bytes - d0.cuda_graph_bytes) <= 1
    assert r.result.kv_cache_tokens > on.result.kv_cache_tokens and r.fits
    (w,) = [w for w in r.result.warnings if w.code == "vllm.cudagraph.not_estimated"]
    assert w.text.startswith("CUDA graph memory profiling is disabled (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0).")
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    assert read_command(f"VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 {base}")[1].options["estimate_cudagraphs"] is True


def test_kv_cache_dtype_skip_layers_is_read_as_the_vramcalc_flag():
    """--kv-cache-dtype-skip-layers (nargs +): layer 0 kept at bf16 in an fp8 cache, the block size raised to 32
    (tests/test_vllm_oracle.py pins the pools against vLLM 0.33.0's planner); with an auto cache it changes nothing."""
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192 --kv-cache-dtype fp8"
    r = check_command(f"{base} --kv-cache-dtype-skip-layers 0 1", "h100")
    assert r.options["kv_cache_dtype_skip_layers"] == ("0", "1")
    assert "--kv-cache-dtype-skip-layers 0 1" in r.vramcalc_command and "--kv-cache-dtype-skip-layers 0 1" in r.result.command
    fp8 = check_command(base, "h100")
    assert r.result.kv_cache_tokens < fp8.result.kv_cache_tokens and r.fits
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    auto = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    assert check_command(f"{auto} --kv-cache-dtype-skip-layers 0", "h100").result.kv_cache_tokens == \
        check_command(auto, "h100").result.kv_cache_tokens


def test_mamba_block_size_is_read_as_the_vramcalc_flag():
    """--mamba-block-size: no memory change with prefix caching (tests/test_vllm_oracle.py pins it against vLLM
    0.33.0's planner), vLLM's ValueError without it; --disable-prefix-caching / --enable-prefix-caching set the Mamba
    state's cache mode (one block a request, or two and a checkpoint)."""
    base = "vllm serve nvidia/Nemotron-H-8B-Base-8K --max-model-len 8192"
    r = check_command(f"{base} --mamba-block-size 64", "h100")
    assert r.options["mamba_block_size"] == 64 and "--mamba-block-size 64" in r.vramcalc_command
    assert r.result.kv_cache_tokens == check_command(base, "h100").result.kv_cache_tokens
    assert main(r.vramcalc_command.split()[1:] + ["--json"]) in (0, 1)
    off = check_command(f"{base} --disable-prefix-caching --mamba-block-size 64", "h100")
    assert off.options["enable_prefix_caching"] is False and not off.result.fits
    assert "ValueError: --mamba-block-size can only be set with --enable-prefix-caching" in [
        e.text for e in off.result.errors]
    free = check_command(f"{base} --disable-prefix-caching", "h100")
    assert free.result.max_concurrency > r.result.max_concurrency  # one Mamba block a request instead of three


def test_runner_pooling_and_convert_are_read_as_the_vramcalc_flags():
    """--runner pooling / --convert embed|classify: Qwen3-8B without its lm_head (151936 x 4096 bf16), the same KV
    cache per byte (tests/test_vllm_oracle.py pins weights and pools against vLLM 0.33.0's own code)."""
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    gen = check_command(base, "h100")
    for extra, convert in (("--runner pooling", "embed"), ("--convert classify", "classify"),
                           ("--runner pooling --convert embed", "embed")):
        r = check_command(f"{base} {extra}", "h100")
        assert extra in r.vramcalc_command and extra in r.result.command and r.fits
        head = gen.result.devices[0].weights_bytes - r.result.devices[0].weights_bytes
        assert head == 151936 * 4096 * 2 - (2 * 4096 * 4 if convert == "classify" else 0)
        assert r.result.kv_cache_tokens > gen.result.kv_cache_tokens
        assert main(r.vramcalc_command.split()[1:] + ["--json"]) == 0
    assert read_command(f"{base} --runner generate")[1].options["runner"] == "generate"
    with pytest.raises(NotModelledError, match="--runner draft"):
        check_command(f"{base} --runner draft", "h100")


def test_ctx_0_is_the_models_own_context_on_both_sides(capsys):
    """llama.cpp's -c 0 is the model's training context (common/arg.cpp --ctx-size): the pasted command's `as` line
    spells it -c 0, and vramcalc's own -c 0 gives the same cells as leaving -c out."""
    r = check_command("llama-server -m Qwen3-8B-Q4_K_M.gguf -c 0 -ngl 99", "4090")
    assert " -c 0" in r.vramcalc_command and "None" not in r.vramcalc_command
    assert r.result.n_ctx == 40960  # Qwen3-8B's max_position_embeddings
    cells = []
    for ctx in (["-c", "0"], []):
        assert main(["check", "qwen3-8b", "--gpu", "4090", "--engine", "llamacpp", "--quant", "Q4_K_M", *ctx,
                     "--json"]) == 0
        cells.append(json.loads(capsys.readouterr().out)["n_ctx"])
    assert cells == [40960, 40960]


def test_cli_check_of_a_quantized_repo_offline_with_its_own_quant_answers_for_its_base(capsys):
    """`--quant awq` beside an offline AWQ repo is the quant its name says: answered for the base model, with the
    warning naming the repo (the seeds' 70B command in vramcalc's flags); a --quant the name contradicts gets no
    stand-in."""
    code = main(["check", "casperhansen/llama-3.3-70b-instruct-awq", "--gpu", "2x4090", "--engine", "vllm", "--tp", "2",
                 "--max-model-len", "8192", "--quant", "awq", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and out["model"]["id"] == "meta-llama/Llama-3.3-70B-Instruct"
    (w,) = [w for w in out["warnings"] if w["code"] == "command.repo_offline"]
    assert "could not be read (" in w["text"] and w["text"].count("(") == w["text"].count(")")
    assert main(["check", "casperhansen/llama-3.3-70b-instruct-awq", "--gpu", "2x4090", "--engine", "vllm",
                 "--quant", "fp8"]) == 2


def test_the_flag_form_spells_lora_and_other_options_as_vramcalc_check_takes_them():
    import argparse

    from vramcalc.cli.check import add_arguments

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    r = check_command("vllm serve meta-llama/Llama-3.1-8B-Instruct --enable-lora --max-loras 2 --max-lora-rank 64 "
                      "--fully-sharded-loras --language-model-only --limit-mm-per-prompt '{\"image\":0}'", "rtx-a6000")
    assert "(enable_lora" not in r.vramcalc_command and "(max_loras" not in r.vramcalc_command
    assert r.vramcalc_command.endswith("--engine vllm --enable-lora --max-loras 2 --max-lora-rank 64 "
                                       "--fully-sharded-loras --language-model-only --limit-mm-per-prompt '{\"image\":0}'")
    ap.parse_args(shlex.split(r.vramcalc_command)[2:])  # every pasted case's: test_same_answer_as_the_equivalent_check


@pytest.mark.parametrize("engine", [e for e in ("vllm", "llamacpp", "vllm_env") if any(
    c["class"] == "no_effect" and c.get("speed") for c in flag_classes()[e].values())])
def test_flags_with_no_effect_on_memory_but_on_speed_say_so(engine):
    """A no_effect flag whose entry names a speed effect is listed as no effect on memory and warned about once,
    with that effect, as left out of the speed estimate; the figures are the command's without it."""
    base = {"vllm": "vllm serve Qwen/Qwen3-8B --max-model-len 8192", "vllm_env": "vllm serve Qwen/Qwen3-8B",
            "llamacpp": "llama-server -m Qwen3-8B-Q4_K_M.gguf -c 8192 -ngl 99"}[engine]
    kinds = {n: o for o in (vllm_table()["options"] if engine == "vllm" else llamacpp_table()["options"]
                            if engine == "llamacpp" else []) for n in o["names"]}
    checked = 0
    for name, entry in flag_classes()[engine].items():
        if entry["class"] != "no_effect" or not entry.get("speed"):
            continue
        if engine == "vllm_env":
            command = f"{name}=1 {base}"
        else:
            o = kinds[name]
            value = (o.get("choices") or ["1"])[-1] if o["kind"] == "value" else None
            command = f"{base} {name}" + (f" {value}" if value is not None else "")
        _, r = read_command(command)
        said = [w for w in r.warnings if w.code == "command.speed_not_estimated"]
        assert len(said) == 1 and said[0].text.startswith(name), command
        assert any(n.startswith(name) for n in r.no_effect), command
        checked += 1
    assert checked  # the engines parametrized all have such an entry


def test_extensible_kv_cache_flags_of_vllm_034():
    """--enable- / --disable-extensible-kv-cache (vLLM 0.34.0 vllm/config/cache.py): off, the KV cache is sized from
    the profile's estimate at utilization 0.92 as in 0.33.0; on a release before 0.34 the flag does not exist."""
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    on, off = check_command(base, "h100"), check_command(f"{base} --disable-extensible-kv-cache", "h100")
    assert on.result.extensible_kv_cache and not off.result.extensible_kv_cache
    assert off.options["enable_extensible_kv_cache"] is False and "--disable-extensible-kv-cache" in off.vramcalc_command
    assert "--disable-extensible-kv-cache" in off.result.command and "--gpu-memory-utilization 0.92" in off.result.command
    assert on.result.devices[0].budget_bytes == on.result.devices[0].total_bytes
    assert off.result.devices[0].budget_bytes < on.result.devices[0].budget_bytes
    assert main(off.vramcalc_command.split()[1:] + ["--json"]) == 0
    with pytest.raises(InputError, match="0.34.0 added the extensible KV cache"):
        check_command(f"{V033} Qwen/Qwen3-8B --enable-extensible-kv-cache", "h100")


def test_checkpoint_prepare_on_startup_needs_sleep_mode_as_vllm_says():
    with pytest.raises(InputError, match="^ValueError: checkpoint_prepare_on_startup requires enable_sleep_mode$"):
        read_command("vllm serve Qwen/Qwen3-8B --checkpoint-prepare-on-startup")
    _, r = read_command("vllm serve Qwen/Qwen3-8B --checkpoint-prepare-on-startup --enable-sleep-mode")
    assert "--checkpoint-prepare-on-startup" in r.no_effect


def test_elastic_ep_keeps_the_extensible_kv_cache_off_as_vllm_034_does():
    """vllm/config/vllm.py VllmConfig._resolve_extensible_kv_cache (0.34.0): elastic EP's scale-up skips warmup, so the
    cache is sized from the profile; asked for beside it, vLLM refuses in these words."""
    base = "vllm serve Qwen/Qwen3-30B-A3B --max-model-len 8192 --enable-expert-parallel -dp 2 --enable-elastic-ep"
    r = check_command(base, "2xh100")
    assert r.options["enable_elastic_ep"] and not r.result.extensible_kv_cache
    assert "--enable-elastic-ep" in r.vramcalc_command and "--enable-elastic-ep" in r.result.command
    bad = check_command(f"{base} --enable-extensible-kv-cache", "2xh100")
    (e,) = [e for e in bad.result.errors if e.code == "vllm.extensible_kv.unsupported"]
    assert e.text == ("ValueError: enable_extensible_kv_cache: elastic EP scale-up skips warmup and reuses the "
                      "profiled KV cache size, so no measurement would size the cache.")


def test_json_flag_keys_with_no_effect_on_memory_but_on_speed_say_so():
    """A JSON-object flag's speed_keys change no memory: each, pasted alone, leaves the flag listed as no effect (or,
    beside a key that acts, as that key's warning says) and is warned about once as left out of the speed estimate."""
    base = "vllm serve Qwen/Qwen3-8B --max-model-len 8192"
    seen = 0
    for name, entry in flag_classes()["vllm"].items():
        for key in entry.get("speed_keys") or {}:
            assert key in entry["fields"] and key not in (entry.get("no_effect_keys") or []), (name, key)
            _, r = read_command(f"{base} {name} {shlex.quote(json.dumps({key: True}))}")
            said = [w for w in r.warnings if w.code == "command.speed_not_estimated"]
            assert len(said) == 1 and said[0].text.startswith(f"{name} ") and f": {key}: " in said[0].text, key
            assert any(n.startswith(name) for n in r.no_effect), (name, key)
            assert not [w for w in r.warnings if w.code == "command.not_modelled"], (name, key)
            seen += 1
    assert seen >= 6


def test_backend_choices_are_lower_snake_cased_as_vllm_s_parser_does():
    """vLLM 0.33.0's parser lower-cases --moe-backend / --linear-backend / --sparse-indexer-topk-backend with - as _
    before it checks the choices (vllm/engine/arg_utils.py EngineArgs.add_cli_args; lower_snake in
    data/vllm_serve_args.json, probed from that parser by tools/engine_arg_tables.py): `--linear-backend Marlin
    --sparse-indexer-topk-backend Deep-Select --moe-backend Flashinfer-Cutlass` parses there as marlin, deep_select,
    flashinfer_cutlass; other choice flags are taken as written."""
    marked = sorted(o["names"][0] for o in vllm_table()["options"] if o.get("lower_snake"))
    assert marked == ["--linear-backend", "--moe-backend", "--sparse-indexer-topk-backend"]
    _, r = read_command("vllm serve Qwen/Qwen3-8B --max-model-len 8192 --moe-backend Flashinfer-Cutlass "
                        "--sparse-indexer-topk-backend AUTO --linear-backend Marlin")
    assert r.options["moe_backend"] == "flashinfer_cutlass"
    assert r.options["sparse_indexer_topk_backend"] is None  # auto: vLLM's default
    assert r.options["linear_backend"] == "marlin"
    with pytest.raises(InputError, match="argument --kda-prefill-backend: invalid choice: 'Triton'"):
        read_command("vllm serve Qwen/Qwen3-8B --kda-prefill-backend Triton")


def test_flags_read_only_by_unread_families():
    """A flag listed as changing nothing because only families vramcalc does not read act on it (read_only_by: the
    vLLM modules that read it) stays true only while no catalog model is built by one of those modules and no reader
    for their model types exists; a reader landing here must model the flag."""
    data = Path(vramcalc.__file__).parent / "data"
    classes = json.loads((data / "vllm_model_classes.json").read_text())["classes"]
    read_types = {t for part in ("text", "composite") for t in json.loads((data / "architectures.json").read_text())[part]}
    catalog_archs = {a for f in (data / "models").glob("*.json")
                     for a in (json.loads(f.read_text()).get("config", {}).get("architectures") or [])}
    guarded = {n: c for n, c in flag_classes()["vllm"].items() if c.get("read_only_by")}
    # --monokernel left this list when MiniMax-M3 (read by vllm.models.minimax_m3) was read: it is modelled
    assert {"--no-swa-bounded-replay", "--kda-decode-backend", "--kda-prefill-backend"} <= set(guarded)
    for name, c in guarded.items():
        archs = {a for a, mod in classes.items() if any(mod.startswith(m) for m in c["read_only_by"])}
        assert archs or any(".layers." in m for m in c["read_only_by"]), name
        assert not archs & catalog_archs, (name, archs & catalog_archs)
        families = {m.rsplit(".", 1)[-1] for m in c["read_only_by"] if m.startswith("vllm.models.")}
        assert not families & read_types, (name, families & read_types)


def test_llama_negated_long_names_read_as_their_short_ones():
    """common/arg.cpp at 4df29be: -nkvo / --no-kv-offload, -no-kvu / --no-kv-unified, -nr / --no-repack are one
    option's negated names each (its args_neg); the long spelling is not the positive option."""
    for short, long, said in (("-nkvo", "--no-kv-offload", {"no_kv_offload": True}),
                              ("-no-kvu", "--no-kv-unified", {"kv_unified": False}),
                              ("-nr", "--no-repack", {"cpu_repack": False})):
        assert read_command(f"llama-server -m x.gguf {short}")[1].options == said
        assert read_command(f"llama-server -m x.gguf {long}")[1].options == said, long
