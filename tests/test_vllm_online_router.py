"""The MoE router (the gate linear) under vLLM's online quantization: quantized only where the model builds it with
the quant config (data/vllm.json router_quant_config), in float32 where the model creates it so
(data/vllm.json fp32_params router_model_types). Checked against vLLM 0.34.0's own model classes built on the meta
device with --quantization fp8 (tests/data/vllm_online_router_oracle_v0.34.0.json, tools/vllm_online_router_oracle.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramcalc.api import model_source
from vramcalc.vllm.engine import VLLMOptions, _scheme
from vramcalc.vllm.weights import layer_tensors, vllm_rules

ORACLE = json.loads((Path(__file__).parent / "data" / "vllm_online_router_oracle_v0.34.0.json").read_text())
ROWS = ORACLE["rows"]


def test_the_fixture_is_vllms():
    assert ORACLE["release"] == "0.34.0" and "meta device" in ORACLE["produced_by"]
    assert all("error" not in r and r["quant_config"] == "OnlineQuantizationConfig" for r in ROWS)
    assert len({r["model_type"] for r in ROWS}) >= 8


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']} tp{r['tp']}")
def test_the_router_rule_is_vllms(row):
    spec = model_source(row["repo_id"]).spec
    quantized = row["router"]["quant_method"] != "UnquantizedLinearMethod"
    assert (spec.model_type in vllm_rules().router_quant_config.model_types) == quantized
    assert (row["router"]["weight_dtype"] == "float8_e4m3fn") == quantized


@pytest.mark.parametrize("quantization", ["fp8", "fp8_per_tensor", "online"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']} tp{r['tp']}")
def test_router_bytes_as_vllm_keeps_them(row, quantization):
    """--quantization fp8 on an unquantized checkpoint is fp8_per_tensor in vLLM 0.34.0 (model_loader/weight_utils.py
    get_quant_config); `online` with a per-tensor linear spec quantizes the same LinearBase layers."""
    spec = model_source(row["repo_id"]).spec
    cfg = json.dumps({"linear": "fp8_per_tensor_static"}) if quantization == "online" else None
    scheme, _ = _scheme(spec, VLLMOptions(tp=row["tp"], quantization=quantization, quantization_config=cfg))
    mine = [t.bytes for layer in layer_tensors(spec, row["tp"], scheme) for t in layer
            if t.group == "router" and t.name.endswith("router.weight")]
    dt, (n, k) = row["router"]["params"]["weight"][0], row["router"]["shape"]
    per = n * k * {"float32": 4, "float8_e4m3fn": 1}.get(dt, 2) + (4 if "weight_scale" in row["router"]["params"] else 0)
    assert len(mine) == row["routers"] and set(mine) == {per}
