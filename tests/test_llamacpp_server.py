"""The llama-server commands vramcalc prints, run as written by a real llama-server (llama.cpp
4df29be) on two RPC devices (tools/record_llamacpp_server.py -> tests/data/llamacpp_server_runs.json):
the command is still the one vramcalc prints, llama.cpp accepts it (or refuses it with the words
vramcalc predicted), and what it allocates on each device is what vramcalc said: model, KV,
recurrent and output buffers to the printed 0.01 MiB, for layer split with -ts, partial offload,
experts on the CPU, quantized KV, split slots, and tensor split."""

import json

import pytest
from conftest import DATA
from llamacpp_models import write_gguf

from vramcalc.gpus import GPU
from vramcalc.llamacpp.compute import UNCERTAINTY
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources import open_model

MIB = 2**20
RECORD = json.loads((DATA / "llamacpp_server_runs.json").read_text())
RUNS = RECORD["runs"]
EXACT = 0.011  # MiB: llama.cpp prints two decimals


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("ggufs")
    return {m: open_model(str(write_gguf(m, d / f"{m}.gguf"))) for m in sorted({r["model"] for r in RUNS})}


def _check(src, run):
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in run["options"].items()}
    size = RECORD["device_mib"] * MIB
    gpus = [GPU(id="rpc", name="RPC device", memory_bytes=size, usable_bytes=size)] * 2
    return check_llamacpp(src.spec, gpus, LlamaOptions(**options, backend="rpc"), src.llama_tensors(),
                          model_ref="MODEL.gguf")


def _recorded(run) -> dict[tuple[str, str], float]:
    """(device, kind) -> MiB; the tensor split's meta device prints one GPU's share."""
    out: dict[tuple[str, str], float] = {}
    for b in run["buffers"]:
        devices = ["rpc0", "rpc1"] if b["device"] == "Meta()" else [b["device"]]
        for d in devices:
            out[(d, b["kind"])] = out.get((d, b["kind"]), 0.0) + b["mib"]
    return out


def _predicted(r) -> dict[tuple[str, str], float]:
    out = {}
    for name, d in zip(("rpc0", "rpc1", "host"), r.devices):
        out[(name, "model")] = (d.model_buffer_bytes + d.repack_buffer_bytes) / MIB
        out[(name, "KV")] = d.kv_buffer_bytes / MIB
        out[(name, "RS")] = d.recurrent_buffer_bytes / MIB
        out[(name, "output")] = d.output_buffer_bytes / MIB
        out[(name, "compute")] = d.compute_buffer_bytes / MIB
    return out


def test_the_recording_covers_layer_tensor_and_row_split_on_nine_families():
    assert len(RUNS) == 48 and len({r["model"] for r in RUNS}) == 9
    assert {r["options"].get("split_mode", "layer") for r in RUNS} == {"layer", "tensor", "row"}
    assert sum(r["healthy"] for r in RUNS) >= 35  # loaded and answered /health


@pytest.mark.parametrize("i", range(len(RUNS)), ids=[f"{r['model']}-{i}" for i, r in enumerate(RUNS)])
def test_printed_command_and_buffers_per_device(sources, i):
    run = RUNS[i]
    r = _check(sources[run["model"]], run)
    assert r.command == run["command"]  # the command that ran is the one vramcalc prints today
    if r.errors:  # vramcalc refuses: llama.cpp refused it too, in the words vramcalc quotes
        assert not run["buffers"] and any(
            r.errors[0].text.split(" [")[0].replace("CUDA0", "RPC0") in e for e in run["errors"]), (r.errors, run["errors"])
        return
    assert run["buffers"], run["errors"]  # vramcalc says it fits: llama.cpp loaded it
    rec, pred = _recorded(run), _predicted(r)
    for key in set(rec) | set(pred):
        if key[1] != "compute":
            assert abs(rec.get(key, 0.0) - pred.get(key, 0.0)) < EXACT, (key, rec.get(key), pred.get(key))


def test_compute_buffers_per_device(sources):
    """Compute per GPU with the verdict's margin covers what llama.cpp allocated on every device that
    holds layers; a device holding the output layer alone is overestimated (its logits are small in
    the reserve graph), and the host's own compute buffer under full offload (2-9 MiB here: inputs
    and the embedding lookup) is not modelled."""
    errors = []
    for run in RUNS:
        if not run["buffers"]:
            continue
        r = _check(sources[run["model"]], run)
        rec, pred = _recorded(run), _predicted(r)
        for dev in ("rpc0", "rpc1"):
            got = rec.get((dev, "compute"), 0.0)
            if got < 1.0:  # the output layer alone
                continue
            errors.append(pred[(dev, "compute")] / got - 1)
            assert pred[(dev, "compute")] * (1 + UNCERTAINTY) >= got, (run["model"], run["options"], dev)
    errors.sort()
    assert len(errors) >= 60
    assert errors[len(errors) // 2] < 0.25 and min(errors) > -0.10
