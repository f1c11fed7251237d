import pytest

from vramcalc.errors import UnknownGPUError
from vramcalc.gpus import GIB
from vramcalc.systems import parse_system


@pytest.mark.parametrize("text,ids,nodes", [
    ("2x4090", ["rtx-4090"] * 2, 1), ("4x3090", ["rtx-3090"] * 4, 1), ("4090:2", ["rtx-4090"] * 2, 1),
    ("4090,3090", ["rtx-4090", "rtx-3090"], 1), ("2x4090, 3060 12GB", ["rtx-4090", "rtx-4090", "rtx-3060-12gb"], 1), ("3060", ["rtx-3060-8gb"], 1),
    ("2x8xH100-SXM", ["h100-sxm"] * 8, 2),
])
def test_system_strings(text, ids, nodes):
    s = parse_system(text)
    assert [g.id for g in s.gpus] == ids and s.nodes == nodes


def test_custom_size_and_bandwidth():
    g = parse_system("48GiB@1000GB/s").gpus[0]
    assert g.usable_bytes == 48 * GIB and g.memory_bandwidth_gbs == 1000


def test_desktop_reservation():
    plain, held = parse_system("4090").gpus[0], parse_system("4090-1.5GiB").gpus[0]
    assert plain.usable_bytes - held.usable_bytes == int(1.5 * GIB)


def test_apple_working_set_limits():
    # recommendedMaxWorkingSetSize: 2/3 of 32 GB logged as 21,845 MB (llama.cpp PR #2011); 3/4 above 36 GiB
    assert abs(parse_system("m3-max(32GiB)").gpus[0].usable_bytes / 2**20 - 21845) < 1
    assert parse_system("m4-max(64GiB)").gpus[0].usable_bytes == int(64 * 0.75 * GIB)


def test_strix_halo_uses_the_gtt_pool_not_the_carve_out():
    g = parse_system("ryzen-ai-max-plus-395(128GiB)").gpus[0]
    assert g.usable_bytes == int(124 * GIB)  # llama.cpp #21801: ~124 GiB via GTT


@pytest.mark.parametrize("bad", ["0x4090", "4090-30GiB", "4090(64GiB)", "rtx9999", ""])
def test_bad_systems_are_refused(bad):
    with pytest.raises(UnknownGPUError):
        parse_system(bad)
