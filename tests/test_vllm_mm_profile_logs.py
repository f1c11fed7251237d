"""Replay of real vLLM start-up logs of multimodal models with images / videos enabled
(tests/data/vllm_mm_profile_logs.json), where vLLM's profile run encodes the largest dummy item and the KV budget
loses the allocator's peak over that forward (vllm/v1/worker/gpu_model_runner.py profile_run). vramcalc sizes no
encoder peak; what these logs check is the claim its vllm.mm.encoder_profile warning makes, that the KV shown is an
upper bound, and they report how far above the logged KV it stands (benchmarks/vllm_feature_logs.py prints the same
rows, tools/mm_profile_peaks.py the peaks they imply). The errors are measured, not fitted: no constant is fitted on
these logs (tools/mm_profile_peaks.py shows the calibration logs cannot separate one), and issue 26's 3 % median
on KV is not met: the measured errors are stated below."""

import json
import statistics
import zlib

import pytest

from benchmarks.vllm_feature_logs import mm_profile_kv_gib, mm_profile_rows
from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

LOGS = json.loads((DATA / "vllm_mm_profile_logs.json").read_text())
RECORDS = LOGS["records"]
REPLAYED = [r for r in RECORDS if r["options"] is not None]
# vramcalc's KV over the logged KV - 1, as measured when the logs were recorded (vramcalc without an encoder term):
# Qwen2.5-VL-3B on an A100-40GB, PR #25631: +405.4 % with the video dummy profiled, +6.1 % with video at 0
MEASURED = {"vllm25631-image-and-video": 4.0539, "vllm25631-video-off": 0.0612}


def test_the_split_follows_its_rule():
    """held_out iff zlib.crc32(url) is odd, else calibrate; a record that cannot be replayed is context and keeps the
    rule's value."""
    assert "crc32" in LOGS["split_rule"]
    for r in RECORDS:
        rule = "held_out" if zlib.crc32(r["url"].encode()) % 2 else "calibrate"
        assert (r["split_by_rule"] if r["split"] == "context" else r["split"]) == rule, r["id"]
        assert (r["split"] == "context") == (r["options"] is None), r["id"]


@pytest.mark.parametrize("r", REPLAYED, ids=[r["id"] for r in REPLAYED])
def test_each_log_is_warned_and_its_kv_stands_above_the_logged_one(r):
    """The warning is raised on every replayed log, and vramcalc's KV is above the logged KV (or above 0 where vLLM
    refused to start): the upper bound the warning names. A refused start that vramcalc shows with KV is the false
    fit the warning exists for."""
    res = check_vllm(load(r["model"]), find_gpu(r["gpu_for_check"]), VLLMOptions(**r["options"]))
    assert "vllm.mm.encoder_profile" in [w.code for w in res.warnings]
    got = res.devices[0].kv_cache_bytes / 2**30
    want = r["logged"].get("available_kv_gib", 0.0)
    print(f"\n{r['id']} [{r['split']}]: vramcalc {got:.2f} GiB, logged "
          f"{want if 'available_kv_gib' in r['logged'] else 'refused'}")
    assert got > want


@pytest.mark.parametrize("cid", sorted(MEASURED))
def test_calibration_errors_are_the_ones_reported(cid):
    """Per-log error against the logged KV, within 0.5 percentage point of the figure reported above."""
    r = next(x for x in RECORDS if x["id"] == cid)
    err = mm_profile_kv_gib(r) / r["logged"]["available_kv_gib"] - 1
    assert err == pytest.approx(MEASURED[cid], abs=0.005)


def test_held_out_errors_and_median():
    """Held-out KV logs: none prints a KV figure (the one held-out record is a start vLLM refused), so there is no
    held-out median to state; what is checked is that the refused start is the bound it is: vramcalc shows KV where
    vLLM had none, the encoder peak at least that large if the card held nothing else (the record's caveat: the
    report does not say, and a V1 start of that time counted other processes' memory against the budget)."""
    rows = [row for row in mm_profile_rows() if row[1] == "held_out"]
    assert all("caveat" in r for r in RECORDS if r["split"] == "held_out")
    assert rows and all(err is None and want is None and got > 0 for _, _, got, want, err, _ in rows)
    errs = [abs(err) for _, split, _, _, err, _ in mm_profile_rows() if split == "calibrate"]
    print(f"\ncalibrate: n={len(errs)} median |error| {statistics.median(errs):.1%}")
