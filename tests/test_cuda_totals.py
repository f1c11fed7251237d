"""GPU totals as CUDA reports them (data/gpu_cuda_totals.json) and the rule for GPUs with no log: the rule
must never give more than any logged total or any nvidia-smi bound (issue 22 item 3, issue 24 item 4)."""

import pytest

from vramcalc.data_files import load
from vramcalc.data_models import CudaTotals
from vramcalc.gpus import GIB, _table, estimate_ratio, find_gpu

TOTALS = load("gpu_cuda_totals.json", CudaTotals)
ROWS = {d.id: d for d in _table()}


def test_every_recorded_total_names_its_log_and_a_known_gpu():
    for gpu_id, rec in TOTALS.totals.items():
        assert gpu_id in ROWS and rec.source
        # a URL, a repository and path, or the same part as one with a source
        assert "http" in rec.source or "/" in rec.source or rec.source.startswith("as "), gpu_id
        assert 0.88 < rec.gib / ROWS[gpu_id].memory_gib <= 1.0, gpu_id


@pytest.mark.parametrize("gpu_id", sorted(TOTALS.totals))
def test_the_rule_never_exceeds_a_recorded_total(gpu_id):
    ratio, _ = estimate_ratio(ROWS[gpu_id])
    assert ROWS[gpu_id].memory_gib * ratio <= TOTALS.totals[gpu_id].gib


@pytest.mark.parametrize("gpu_id", sorted(k for k in TOTALS.upper_bounds_mib if not k.startswith("_")))
def test_totals_and_the_rule_stay_below_nvidia_smi(gpu_id):
    bound = int(TOTALS.upper_bounds_mib[gpu_id]) / 1024
    ratio, _ = estimate_ratio(ROWS[gpu_id])
    assert ROWS[gpu_id].memory_gib * ratio <= bound
    if gpu_id in TOTALS.totals:
        assert TOTALS.totals[gpu_id].gib <= bound


@pytest.mark.parametrize("query,gib", [("t4", 14.56), ("a10", 21.99), ("l40s", 44.40), ("a100-40gb-sxm", 39.56),
                                       ("b200", 178.35)])
def test_the_logged_datacenter_totals_are_used(query, gib):
    g = find_gpu(query)
    assert g.usable_bytes == int(gib * GIB) and g.usable_source.startswith("CUDA-reported")


def test_datacenter_gddr_cards_without_a_log_take_the_inline_ecc_rule():
    l4 = find_gpu("l4")  # logs elsewhere show ~22.16 GiB; the rule gives 21.6
    assert l4.usable_bytes == int(24 * 0.90 * GIB) and l4.usable_source.startswith("estimated")
    assert find_gpu("l40").usable_bytes == int(48 * 0.90 * GIB)
    assert find_gpu("h200-sxm").usable_bytes == int(141 * 0.98 * GIB)  # HBM
