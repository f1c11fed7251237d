"""vLLM 0.33.0+ on gfx11 GPUs (RDNA3 / RDNA3.5: RX 7900, Strix Halo) pads the row stride of unquantized linear
weights by one cache line where a row is a multiple of 2048 bytes. Checked against vLLM 0.34.0's own
UnquantizedLinearMethod.process_weights_after_loading (tests/data/vllm_gfx11_pad_oracle_v0.34.0.json) and the
figures vllm-project/vllm PR #55090 published for Qwen3-8B on a Strix Halo (tests/data/vllm_gfx11_pad_logs.json)."""

import json
import os
from collections import defaultdict

import pytest

from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm
from vramcalc.vllm.weights import gfx11_row_pad_per_rank

DATA = os.path.join(os.path.dirname(__file__), "data")
ORACLE = json.load(open(os.path.join(DATA, "vllm_gfx11_pad_oracle_v0.34.0.json")))
LOGS = json.load(open(os.path.join(DATA, "vllm_gfx11_pad_logs.json")))["runs"]
GIB = 2**30


def _oracle_per_layer() -> dict[tuple[str, int, str], int]:
    """Bytes vLLM's own method added to one decoder layer's four linears (qkv, o, gate_up, down)."""
    out: dict[tuple[str, int, str], int] = defaultdict(int)
    for r in ORACLE["rows"]:
        out[(r["model"], r["tp"], r["gfx_arch"])] += r["storage_bytes_after"] - r["storage_bytes_before"]
    return out


@pytest.mark.parametrize("key", sorted(_oracle_per_layer()), ids=lambda k: f"{k[0]}-tp{k[1]}-{k[2]}")
def test_the_pad_of_each_rank_equals_vllms_own(key):
    model, tp, gfx = key
    spec = load(model)
    per_layer = _oracle_per_layer()[key]
    if gfx.startswith("gfx11"):
        assert gfx11_row_pad_per_rank(spec, tp) == [per_layer * spec.num_layers] * tp
    else:  # CDNA: no pad, which the engine model applies only on gfx11
        assert per_layer == 0


@pytest.mark.parametrize("version,padded", [("0.32.0", False), ("0.33.0", True), ("0.34.0", True)])
def test_the_weights_vllm_holds_on_a_strix_halo(version, padded):
    """Qwen3-8B bf16: the PR's measured weight memory without the pad (15.27 GiB) and with it (15.47 GiB); vramcalc
    is within 0.5% of each (its pad, 171 MiB, is the PR's own count), and an MI300X (gfx942) is not padded."""
    run = LOGS[0]
    spec = load(run["model"])
    r = check_vllm(spec, find_gpu(run["gpu_for_check"]), VLLMOptions(max_model_len=4096, engine_version=version))
    logged = run["weights_gib_with_pad"] if padded else run["weights_gib_without_pad"]
    assert r.devices[0].weights_bytes / GIB == pytest.approx(logged, rel=0.005)
    unpadded = check_vllm(spec, find_gpu("mi300x"), VLLMOptions(max_model_len=4096, engine_version=version))
    delta = r.devices[0].weights_bytes - unpadded.devices[0].weights_bytes
    if padded:
        assert delta / 2**20 == pytest.approx(run["pad_mib"], abs=0.5)
    else:
        assert delta == 0
