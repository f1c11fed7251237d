"""Replay of real vLLM start-up logs of multimodal models with images / videos enabled
(tests/data/vllm_mm_profile_logs.json), where vLLM's profile run encodes the largest dummy item and the KV budget
loses the allocator's peak over that forward (vllm/v1/worker/gpu_model_runner.py profile_run). vramcalc sizes no
encoder peak; these logs check the claim its vllm.mm.encoder_profile warning makes, that the KV shown is an upper
bound, and report how far above the logged KV it stands (benchmarks/vllm_feature_logs.py prints the same rows).

tools/mm_profile_peaks.py fits the one-constant per-tower estimate it describes on the calibration logs (c = 19.1
from PR #25631's image-only run) and replays the held-out pair with it: -17.5 % against +3.6 % without it, so the
estimate is not in vramcalc and the warning stays an upper-bound warning. Issue 26's 3 % median on KV: the held-out
median without an encoder term is 3.6 % (n = 1, a pair of runs that differ in the tower only); the calibration logs
stand 6.1 % (image) and 405 % (video) above their logged KV."""

import json
import statistics
import zlib

import pytest

from benchmarks.vllm_feature_logs import mm_profile_rows
from conftest import DATA
from vramcalc.gpus import find_gpu
from vramcalc.sources.catalog import load
from vramcalc.vllm.engine import VLLMOptions, check_vllm

LOGS = json.loads((DATA / "vllm_mm_profile_logs.json").read_text())
RECORDS = LOGS["records"]
MM_ON = [r for r in RECORDS if r["options"] is not None and not r["options"].get("language_model_only")]
ROWS = {row[0]: row for row in mm_profile_rows()}
# vramcalc's KV over the logged KV - 1 as reported when the logs were recorded (no encoder term in vramcalc)
REPORTED = {"vllm25631-image-and-video": 4.0539, "vllm25631-video-off": 0.0612,
            "club3090-75-qwen36-27b-dflash-viz": 0.0362}
HELD_OUT_BOUND = 0.05  # per held-out KV log: 0 <= vramcalc / logged - 1 <= 5 %


def test_the_split_follows_its_rule():
    """held_out iff zlib.crc32(url) is odd, else calibrate; a record that cannot be replayed is context and keeps the
    rule's value."""
    assert "crc32" in LOGS["split_rule"]
    for r in RECORDS:
        rule = "held_out" if zlib.crc32(r["url"].encode()) % 2 else "calibrate"
        assert (r["split_by_rule"] if r["split"] == "context" else r["split"]) == rule, r["id"]
        assert (r["split"] == "context") == (r["options"] is None), r["id"]


@pytest.mark.parametrize("r", MM_ON, ids=[r["id"] for r in MM_ON])
def test_each_multimodal_start_is_warned(r):
    """Every replayed start with the tower on carries the vllm.mm.encoder_profile warning."""
    res = check_vllm(load(r["model"]), find_gpu(r["gpu_for_check"]), VLLMOptions(**r["options"]))
    assert "vllm.mm.encoder_profile" in [w.code for w in res.warnings]


@pytest.mark.parametrize("cid", sorted(ROWS))
def test_vramcalc_stands_above_each_logged_kv(cid):
    """vramcalc's KV (for a pair, the one predicted from its tower-off run) is above the logged KV, or above 0 where
    vLLM refused to start: the upper bound the warning names. The refused start that vramcalc shows with KV is the
    false fit the warning exists for."""
    _, split, got, want, err, note = ROWS[cid]
    print(f"\n{cid} [{split}]: {note}")
    if got is not None:
        assert got > (want or 0.0)


@pytest.mark.parametrize("cid", sorted(REPORTED))
def test_errors_are_the_ones_reported(cid):
    """Per-log error against the logged KV, within 0.5 percentage point of the figure reported above."""
    assert ROWS[cid][4] == pytest.approx(REPORTED[cid], abs=0.005)


def test_held_out_errors_and_median():
    """Held-out KV logs within HELD_OUT_BOUND each, and their median; the refused start is checked as the bound it is
    (vramcalc shows KV where vLLM had none) under its caveat (the report does not say whether the card was shared,
    and a V1 start of that time counted other processes' memory against the budget)."""
    held = [row for row in ROWS.values() if row[1] == "held_out"]
    errs = [err for _, _, _, _, err, _ in held if err is not None]
    assert errs and all(0 <= e <= HELD_OUT_BOUND for e in errs)
    print(f"\nheld out: n={len(errs)} median |error| {statistics.median(map(abs, errs)):.1%}")
    refused = [row for row in held if row[3] is None]
    assert refused and all(got > 0 for _, _, got, _, _, _ in refused)
    assert all("caveat" in r for r in RECORDS if r["split"] == "held_out" and "outcome" in r["logged"])
