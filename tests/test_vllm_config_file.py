"""`vllm serve --config FILE` against vLLM 0.33.0's own argument parser run on the CPU
(tests/data/vllm_config_file_oracle_v0.33.0.json, tools/vllm_config_file_oracle.py): the words
FlexibleArgumentParser._pull_args_from_config hands on, from PyYAML's reading of each file, or its refusal."""

import json
import os

import pytest

from vramcalc.errors import InputError, NotModelledError
from vramcalc.pasted_command import check_command, read_command, vllm_table
from vramcalc.vllm.config_file import pull_config, read_yaml

FIXTURE = json.load(open(os.path.join(os.path.dirname(__file__), "data", "vllm_config_file_oracle_v0.33.0.json")))
NAMES = {n for o in vllm_table()["options"] for n in o["names"] + o.get("hidden", [])}


def test_fixture_names_release_and_method():
    assert FIXTURE["release"] == "0.33.0" and len(FIXTURE["cases"]) >= 12
    assert "VLLM_TARGET_DEVICE=cpu" in FIXTURE["produced_by"]
    assert "tools/vllm_config_file_oracle.py" in FIXTURE["produced_by"]


@pytest.mark.parametrize("c", FIXTURE["cases"], ids=lambda c: c["file"] + "-" + "_".join(c["words"][1:3]))
def test_words_against_vllm(c, tmp_path):
    path = tmp_path / c["file"]
    if c["text"] is not None:
        path.write_text(c["text"])
    words = [w.replace("FILE", str(path)) for w in c["words"]][1:]  # after `serve`
    if "error" in c:
        kind, _, text = c["error"].partition(": ")
        err = NotModelledError if kind == "FileNotFoundError" else InputError
        with pytest.raises(err) as e:
            pull_config(words, NAMES)
        if err is InputError:
            assert str(e.value) == c["error"]
        else:
            assert "cannot read the file here (FileNotFoundError" in str(e.value)
        return
    ours = pull_config(words, NAMES)
    assert ours == [w.replace("FILE", str(path)) for w in c["args"]][1:]


def test_yaml_scalars_as_pyyaml_resolves_them():
    got = read_yaml("a: yes\nb: Off\nc: 0o7\nd: 010\ne: 1e3\nf: 1.5e+3\ng: ~\nh: 'it''s'\ni: \"x\\ty\"\nj:\n"
                    "k:\n  l: 1\n  m:\n    - 2\n    - three\n")
    assert got == {"a": True, "b": False, "c": "0o7", "d": 8, "e": "1e3", "f": 1500.0, "g": None, "h": "it's",
                   "i": "x\ty", "j": None, "k": {"l": 1, "m": [2, "three"]}}


def test_unread_yaml_is_refused_as_not_modelled():
    with pytest.raises(NotModelledError, match="line 1: the value '&a 1'"):
        read_yaml("max-model-len: &a 1\n")
    with pytest.raises(NotModelledError, match="block scalar"):
        read_yaml("chat-template: |\n  x\n")


def test_a_pasted_command_with_its_file(tmp_path):
    f = tmp_path / "serve.yaml"
    f.write_text("max-model-len: 8192\ntensor-parallel-size: 2\noffload-group-size: 4\nenforce-eager: true\n")
    _, r = read_command(f"vllm serve Qwen/Qwen3-8B --config {f} -tp 1")
    assert r.options["max_model_len"] == 8192 and r.options["tp"] == 1  # the command line wins
    assert r.options["offload_group_size"] == 4 and r.options["enforce_eager"] is True and not r.warnings
    out = check_command(f"vllm serve Qwen/Qwen3-8B --config {f}", "2xh100-sxm")
    assert "--max-model-len 8192" in out.result.command and out.result.layout.tp == 2


def test_config_with_equals_is_not_read(tmp_path):
    f = tmp_path / "serve.yaml"
    f.write_text("max-model-len: 8192\n")
    _, r = read_command(f"vllm serve Qwen/Qwen3-8B --max-model-len 4096 --config={f}")
    assert r.options["max_model_len"] == 4096
    assert [w.code for w in r.warnings] == ["vllm.config.not_read"]


def test_a_file_not_here_is_refused_by_name():
    with pytest.raises(NotModelledError, match="--config /nowhere/serve.yaml: vramcalc cannot read the file here"):
        read_command("vllm serve Qwen/Qwen3-8B --config /nowhere/serve.yaml")


def test_hidden_negations_read_as_their_visible_twins():
    """EnableDisableAction takes --no-enable-x / --no-disable-x without showing them (vllm/utils/argparse_utils.py);
    a config file's `false` writes them (the fixture's bools.yaml): read as --disable-x / --enable-x."""
    _, hidden = read_command("vllm serve Qwen/Qwen3-8B --no-enable-prefix-caching --no-disable-custom-all-reduce")
    _, shown = read_command("vllm serve Qwen/Qwen3-8B --disable-prefix-caching --enable-custom-all-reduce")
    assert hidden.options == shown.options and hidden.options["enable_prefix_caching"] is False
