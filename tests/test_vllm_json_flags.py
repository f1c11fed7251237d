"""--additional-config, --model-loader-extra-config, --model-class-overrides, --weight-transfer-config,
--engram-config, --diffusion-config, --ec-transfer-config and --ec-manager-config against vLLM 0.33.0's own code run
on CPU (tests/data/vllm_json_flags_oracle_v0.33.0.json, tools/vllm_json_flags_oracle.py): each value vLLM refuses is
refused in its words, and each it takes is read as the config vLLM built from it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vramcalc.data_files import load
from vramcalc.data_models import VllmModelClasses
from vramcalc.errors import InputError
from vramcalc.pasted_command import read_command
from vramcalc.vllm.features import features

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_json_flags_oracle_v0.33.0.json").read_text())
CASES = ORACLE["cases"]
# what the oracle machine lacks, not what vLLM says of the value: Ray is not installed there
ENVIRONMENT = ("Failed to import Ray",)
JSON_FLAGS = ("--additional-config", "--model-loader-extra-config", "--model-class-overrides",
              "--weight-transfer-config", "--engram-config", "--diffusion-config", "--ec-transfer-config",
              "--ec-manager-config")


def _refusal(row: dict) -> str | None:
    """vLLM's refusal of the case, if any: the parser's, the config's, the loader's, the weight-transfer engine's
    or the EC connector factory's."""
    for k in ("parse_error", "config_error", "loader_error", "weight_transfer_error"):
        if row.get(k):
            return row[k]
    return (row.get("ec") or {}).get("connector_error")


def _core(text: str) -> str:
    """The words of vLLM's refusal: pydantic's [type=...] and link left out, a model validator's own message, the
    JSON decoder's position and json.loads' address left out."""
    text = text.split(" [type=")[0].split("Invalid JSON: ")[0].split(" <function loads at ")[0]
    return text.split("Value error, ")[-1] if "Value error, " in text else text


def _read(row: dict):
    return read_command(f"vllm serve {row['model']} --max-model-len 4096 " + " ".join(map(shlex.quote, row["argv"])))


def test_the_fixture_is_vllms():
    assert ORACLE["release"] == "0.33.0" and "run on CPU" in ORACLE["produced_by"] and len(CASES) == 83


@pytest.mark.parametrize("row", CASES, ids=[" ".join(r["argv"])[:70] for r in CASES])
def test_each_case_as_vllm_answers_it(row):
    said = _refusal(row)
    if said and any(e in said for e in ENVIRONMENT):
        pytest.skip(said)
    if said and "EC producer-only instance requires a multimodal model" in said:
        # refused by VllmConfig for a text-only model, which the command does not say: vramcalc warns, naming it
        _, r = _read(row)
        (w,) = [w for w in r.warnings if w.code == "command.not_modelled"]
        assert "requires a multimodal model" in w.text
        return
    if said and "got 'mp'" in said and "--distributed-executor-backend" not in row["argv"]:
        # one worker's default executor is uni, which the CPU platform alone turns to mp (vllm/platforms/cpu.py
        # CpuPlatform.check_and_update_config, vllm/config/parallel.py ParallelConfig.__post_init__)
        said = said.replace("got 'mp'", "got 'uni'")
    if said or "--engram-config" in row["argv"]:  # no model vramcalc sizes takes --engram-config
        with pytest.raises(InputError) as e:
            _read(row)
        assert said and _core(said) in str(e.value)
        return
    _, r = _read(row)
    flag = next(a for a in row["argv"] if a in JSON_FLAGS)
    ne = any(x.startswith(flag) for x in r.no_effect)
    warned = [w for w in r.warnings if w.code == "command.not_modelled" and w.text.startswith(flag)]
    # an EC consumer through ECExampleConnector is modelled (sized as precomputed embeddings): neither
    # and a weight-transfer backend whose default buffers are sized (vramcalc/vllm/weight_transfer.py): neither
    # and --diffusion-config, sized by vramcalc/vllm/diffusion.py: neither
    assert ne != bool(warned) or (flag in ("--additional-config", "--ec-transfer-config", "--weight-transfer-config",
                                           "--diffusion-config") and not ne and not warned)
    if flag == "--additional-config":
        gdn = (row["additional_config"] or {}).get("gdn_prefill_backend")
        assert r.options.get("gdn_prefill_backend") == (gdn.strip().lower() if gdn and gdn != "auto" else None)
        unsized = {"decode_backend", "mla_core", "kda_prefill_backend", "kda_decode_backend"}
        assert bool(warned) == bool(unsized & set(row["additional_config"]))
    elif flag == "--model-class-overrides":
        classes = load("vllm_model_classes.json", VllmModelClasses).classes
        if ne:  # no effect only where vLLM builds the class it registers for the architecture
            assert row["model_class"] == classes[row["architecture"]]
        if row["model_class"] != classes[row["architecture"]]:
            assert warned
    elif flag == "--weight-transfer-config":  # the engine holds no device tensor at start-up; each update's buffers
        # are sized for the backends with default sizes, the others warned about as not modelled
        wt = features().json_flags.weight_transfer
        backend = row["weight_transfer_backend"]
        assert row["weight_transfer_tensors"] == []
        assert r.options.get("weight_transfer_backend") == (None if backend in wt.unsized else backend)
        assert bool(warned) == (backend in wt.unsized) and (backend in wt.unsized) != (backend in wt.buffers)
    elif flag == "--diffusion-config":  # read into the options; sized at check time (tests/test_vllm_diffusion.py)
        assert row["scheduler_cls"].endswith("DiffusionScheduler") and not warned
        given = json.loads(row["argv"][1])
        assert r.options["diffusion_config"] == given
        assert row["num_speculative_tokens"] == (given.get("canvas_length") or 0)
    elif flag == "--ec-manager-config":
        assert ne == (row["ec_manager_cls"] is None)
    elif flag == "--ec-transfer-config":  # an ec_producer (encoder-only) and the connectors' own buffers are warned
        role = json.loads(row["argv"][1])["ec_role"]
        assert row["ec"]["connector"] and r.options["ec_role"] == role
        assert row["ec"]["is_ec_consumer"] == (role in ("ec_consumer", "ec_both"))
        assert bool(warned) == (row["ec"]["is_encode_only"] or row["ec"]["connector"] != "ECExampleConnector"
                                or role == "ec_both")
        if warned:
            assert row["ec"]["is_encode_only"] == ("as ec_producer" in warned[0].text)
    elif flag == "--model-loader-extra-config":
        assert ne == (not json.loads(row["argv"][row["argv"].index(flag) + 1]).get("distributed"))


def test_the_class_table_is_the_registry_vllm_resolves():
    """data/vllm_model_classes.json: the class vLLM 0.33.0 resolves for each case's architecture without overrides."""
    classes = load("vllm_model_classes.json", VllmModelClasses).classes
    rows = [r for r in CASES if r.get("model_class") and not r.get("model_class_overrides")]
    assert rows and all(classes[r["architecture"]] == r["model_class"] for r in rows)


def test_gdn_prefill_backend_flag_wins_over_the_key_in_either_order():
    _, r = read_command("vllm serve Qwen/Qwen3.5-0.8B --additional-config '{\"gdn_prefill_backend\": \"triton\"}' "
                        "--gdn-prefill-backend flashinfer")
    assert r.options["gdn_prefill_backend"] == "flashinfer"
    _, r = read_command("vllm serve Qwen/Qwen3.5-0.8B --gdn-prefill-backend triton --additional-config "
                        "'{\"gdn_prefill_backend\": \"flashinfer\"}'")
    assert r.options["gdn_prefill_backend"] == "triton"
