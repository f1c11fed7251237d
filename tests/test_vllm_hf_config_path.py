"""--hf-config-path: vLLM builds the model from that path's config (vllm/config/model.py ModelConfig, 0.33.0), the
oracle tests/data/vllm_hf_config_path_oracle_v0.33.0.json (tools/vllm_hf_config_path_oracle.py, vLLM's own
EngineArgs.create_engine_config and the model class built on the meta device on CPU): vramcalc sizes the served
model from that config, in a pasted command, `vramcalc check --hf-config-path` and vramcalc.check."""

import json
from pathlib import Path

import pytest

import vramcalc
from conftest import DATA
from vramcalc.cli import main
from vramcalc.pasted_command import check_command
from vramcalc.sources.catalog import load

ORACLE = json.loads((DATA / "vllm_hf_config_path_oracle_v0.33.0.json").read_text())
GPU = "a100-80gb-sxm"
MODELS = Path(vramcalc.__file__).parent / "data" / "models"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def _folder(tmp_path, repo, name):
    """The catalog's config.json of `repo` as a local folder (vramcalc/data/models)."""
    d = tmp_path / name
    d.mkdir()
    entry = json.loads((MODELS / (repo.replace("/", "__") + ".json")).read_text())
    (d / "config.json").write_text(json.dumps(entry["config"]))
    return str(d)


def test_oracle_names_release_and_method():
    assert ORACLE["release"] == "0.33.0" and "hf_config_path=CONFIG_DIR" in ORACLE["produced_by"]
    assert all(c["architecture"] != load(c["model"]).architecture for c in ORACLE["cases"])


@pytest.mark.parametrize("c", ORACLE["cases"], ids=lambda c: f"{c['model']}-as-{c['hf_config_path']}")
def test_the_model_is_sized_from_the_config_vllm_reads(c, tmp_path):
    model, config = _folder(tmp_path, c["model"], "model"), _folder(tmp_path, c["hf_config_path"], "config")
    r = check_command(f"vllm serve {model} --hf-config-path {config} --max-model-len 4096", GPU)
    spec = load(c["hf_config_path"])
    # the architecture vLLM built is the config path's, not the model folder's
    assert (spec.architecture, spec.num_layers, spec.hidden_size) == (c["architecture"], c["num_layers"],
                                                                     c["hidden_size"])
    assert r.options["hf_config_path"] == config
    assert [w.code for w in r.result.warnings].count("command.hf_config_path") == 1
    # the same budget as the config alone, served under the model's name
    alone = vramcalc.check(config, GPU, engine="vllm", max_model_len=4096)
    assert r.result.devices == alone.devices and r.result.model.id == model
    assert r.result.speed == alone.speed  # the speed estimate is that config's too
    # its weights are vLLM's parameter bytes of that architecture, within vramcalc's weight model (0.5%)
    assert abs(r.result.devices[0].weights_bytes - c["weights_bytes_rank0"]) <= 0.005 * c["weights_bytes_rank0"]
    assert f"vllm serve {model} --hf-config-path {config}" in r.result.command
    assert f"--hf-config-path {config}" in r.vramcalc_command


def test_cli_and_api_take_it_too(tmp_path, capsys):
    c = ORACLE["cases"][0]
    config = _folder(tmp_path, c["hf_config_path"], "config")
    r = vramcalc.check(c["model"], GPU, engine="vllm", max_model_len=4096, hf_config_path=config)
    assert r.devices == vramcalc.check(config, GPU, engine="vllm", max_model_len=4096).devices
    assert main(["check", c["model"], "--gpu", GPU, "--engine", "vllm", "--max-model-len", "4096",
                 "--hf-config-path", config]) == 0
    out = capsys.readouterr().out
    assert "is sized from that config (Qwen3ForCausalLM)" in out and f"--hf-config-path {config}" in out
    # the model's own files need not be there: only the config is read
    assert main(["check", "acme/not-on-this-machine", "--gpu", GPU, "--engine", "vllm", "--max-model-len", "4096",
                 "--hf-config-path", config]) == 0
    assert "acme/not-on-this-machine is sized from that config" in capsys.readouterr().out


def test_a_hub_repo_as_the_config_path_is_read_as_a_model_is(tmp_path, monkeypatch):
    # the config read from a Hub repo (the real huggingface_hub client against tests/hubserver.py), the weights that
    # config's parameters, not the repo's safetensors (another checkpoint's)
    from hubserver import HubServer, repo_from_folder
    from vramcalc.sources import open_model

    server = HubServer()
    server.repos["acme/tiny-llama"] = repo_from_folder(DATA / "checkpoints" / "llama")
    monkeypatch.setenv("HF_ENDPOINT", server.start())
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    try:
        model = _folder(tmp_path, "Qwen/Qwen3-8B", "model")
        r = check_command(f"vllm serve {model} --hf-config-path acme/tiny-llama --max-model-len 512", GPU)
        spec = open_model("acme/tiny-llama").spec
        plain = vramcalc.check(spec, GPU, engine="vllm", max_model_len=512)
        own = vramcalc.check(model, GPU, engine="vllm", max_model_len=512)  # the model folder's own config
        assert r.result.model.params_total == plain.model.params_total != own.model.params_total
        assert r.result.devices == plain.devices and "--hf-config-path acme/tiny-llama" in r.result.command
    finally:
        server.stop()
