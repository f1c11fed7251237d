"""GPU names resolve to the product they name and never to a neighbour (issue 24, item 3)."""

import json

import pytest

from vramcalc.data_files import _text
from vramcalc.errors import UnknownGPUError
from vramcalc.gpus import _table, candidates, find_gpu
from vramcalc.systems import parse_system

# Every GPU name in the speed and start-up measurements (the project's ground-truth sets: the `gpu`
# column of the throughput rows, `gpu_model` of the vLLM start-up logs, the devices llama.cpp printed,
# the `system` of the serving runs), as written there, and the entry each resolves to. A name that names
# form-factor variants resolves to the least-memory one, with a coded note (NOTED).
GROUND_TRUTH = {
    "A100 80GB": "a100-80gb-pcie",
    "AMD Instinct MI100": "mi100",
    "AMD Instinct MI300X": "mi300x",
    "AMD Instinct MI355X": "mi355x",
    "AMD RX 7900 XTX": "rx-7900-xtx",
    "AMD Ryzen AI Max (Radeon 8060S iGPU, Framework Desktop)": "ryzen-ai-max-plus-395",
    "AMD Ryzen AI Max+ 395 / Radeon 8060S (Strix Halo)": "ryzen-ai-max-plus-395",
    "Apple M1 (7-core GPU, 8GB)": "apple-m1",
    "Apple M1 Max (32-core GPU, 64GB)": "apple-m1-max",
    "Apple M1 Max (64GB)": "apple-m1-max",
    "Apple M2 Ultra (76-core GPU, 192GB)": "apple-m2-ultra",
    "Apple M3 Max": "apple-m3-max-30c",
    "Apple M3 Max (40-core GPU, 64GB)": "apple-m3-max",
    "Apple M3 Ultra (256GB)": "apple-m3-ultra",
    "H100 80GB": "h100-pcie",
    "Intel Arc A310 ECO": "arc-a310",
    "Intel Arc B580": "arc-b580",
    "NVIDIA DGX Spark (GB10)": "dgx-spark-gb10",
    "NVIDIA DGX Spark (GB10, LPDDR5x unified)": "dgx-spark-gb10",
    "NVIDIA Jetson AGX Orin": "jetson-agx-orin-32gb",
    "NVIDIA RTX 3060 12GB": "rtx-3060-12gb",
    "RTX 3080": "rtx-3080-10gb",
    "RTX 3090": "rtx-3090",
    "RTX 3090 Ti": "rtx-3090-ti",
    "RTX 4090": "rtx-4090",
    "Tesla P40": "tesla-p40",
    "H100 80GB (79.22 GiB reported)": "h100-pcie",
    "NVIDIA A100 40GB": "a100-40gb-pcie",
    "NVIDIA A100 80GB": "a100-80gb-pcie",
    "NVIDIA GeForce RTX 5090": "rtx-5090",
    "NVIDIA GeForce RTX 5090 (31.4 GiB reported)": "rtx-5090",
    "NVIDIA H100": "h100-pcie",
    "NVIDIA H100 80GB": "h100-pcie",
    "NVIDIA L4": "l4",
    "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition (97,887 MiB)": "rtx-pro-6000-blackwell-max-q",
    "NVIDIA GeForce RTX 3090": "rtx-3090",
    "NVIDIA RTX A6000": "rtx-a6000",
    "NVIDIA A100 80GB PCIe": "a100-80gb-pcie",
    "NVIDIA A100-PCIE-40GB": "a100-40gb-pcie",
    "AMD Radeon RX 7900 XT": "rx-7900-xt",
    "NVIDIA GeForce GTX 1070 Ti (8 GB)": "gtx-1070-ti",
    "b200_sxm": "b200",
    "h100_sxm": "h100-sxm",
    "H100-80GB (SXM)": "h100-sxm",
    "Device 0: NVIDIA GeForce RTX 3090 (compute capability 8.6)": "rtx-3090",
    "Device 1: NVIDIA GeForce RTX 3090 (compute capability 8.6)": "rtx-3090",
    "Device 0: NVIDIA RTX A6000 (compute capability 8.6)": "rtx-a6000",
    "Apple M5": "apple-m5",
    "Tenstorrent n300 (Wormhole, 2 chips)": "tenstorrent-n300",
    "Intel(R) UHD Graphics": "intel-uhd-graphics",
}
NOTED = {"A100 80GB", "RTX 3080", "Apple M3 Max", "H100 80GB", "NVIDIA Jetson AGX Orin", "H100 80GB (79.22 GiB reported)",
         "NVIDIA A100 40GB", "NVIDIA A100 80GB", "NVIDIA H100", "NVIDIA H100 80GB"}
# Names without a memory size of a product sold with several (or an iGPU sharing the host's RAM): the least is assumed,
# with a coded note.
SIZE_ASSUMED = {"Apple M5", "Intel(R) UHD Graphics"}
# Memory sizes the names give, as the GPU's memory.
NAMED_MEMORY = {"Apple M1 (7-core GPU, 8GB)": 8, "Apple M1 Max (32-core GPU, 64GB)": 64, "Apple M3 Max (40-core GPU, 64GB)": 64,
                "Apple M2 Ultra (76-core GPU, 192GB)": 192, "Apple M3 Ultra (256GB)": 256, "Apple M5": 16,
                "Intel(R) UHD Graphics": 8}


def test_every_ground_truth_gpu_resolves_to_itself():
    resolved = {name: find_gpu(name) for name in GROUND_TRUTH}
    assert {n: g.id for n, g in resolved.items()} == GROUND_TRUTH
    assert {n for n, g in resolved.items() if g.note_code == "gpu.ambiguous_name"} == NOTED
    assert {n for n, g in resolved.items() if g.note_code == "gpu.memory_assumed"} == SIZE_ASSUMED
    assert {n: resolved[n].memory_bytes / 2**30 for n in NAMED_MEMORY} == NAMED_MEMORY
    # an entry no second public page has confirmed says so wherever it is used
    assert all((g.note_code == "gpu.unverified") == (g.verification == "unverified")
               for n, g in resolved.items() if n not in NOTED | SIZE_ASSUMED)


def test_devices_no_modelled_engine_runs_on_resolve_to_themselves_and_the_engines_refuse_them():
    """The Tenstorrent card has an entry, but vLLM has no platform for it and llama.cpp no backend: each says so in
    its own words; vLLM's XPU platform does not list Intel UHD iGPUs (llama.cpp runs on them, through Vulkan)."""
    from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
    from vramcalc.sources.catalog import load
    from vramcalc.vllm.rules import platform_messages

    n300 = find_gpu("Tenstorrent n300 (Wormhole, 2 chips)")
    assert (n300.memory_bytes / 2**30, n300.memory_bandwidth_gbs) == (24, 576)  # Tenstorrent's card table
    [m] = platform_messages(n300)
    assert m.code == "vllm.platform.unsupported_device" and m.text.startswith("RuntimeError: Failed to infer device type")
    [m] = platform_messages(find_gpu("Intel(R) UHD Graphics"))
    assert m.code == "vllm.platform.unsupported_device" and "Intel ARC GPU" not in m.text and "Arc GPU" in m.text
    assert platform_messages(find_gpu("Intel Arc B580")) == []
    spec = load("Qwen/Qwen3-0.6B")
    r = check_llamacpp(spec, n300, LlamaOptions(ftype="Q8_0", n_ctx=2048), solve=False)
    assert not r.fits and [e.code for e in r.errors] == ["llamacpp.no_backend"]
    assert r.errors[0].text.startswith("warning: no usable GPU found, --gpu-layers option will be ignored")
    uhd = check_llamacpp(spec, find_gpu("Intel UHD Graphics 16GB"), LlamaOptions(ftype="Q8_0", n_ctx=2048), solve=False)
    assert uhd.fits and not uhd.errors


def _spellings(row):
    """An entry's own names and the ways people write them: case, spaces, hyphens, vendor prefix."""
    names = [row.id, row.name, *row.aliases]
    out = set(names)
    for n in names:
        out |= {n.upper(), n.lower(), n.replace(" ", "-")}
        if n != row.id:
            out.add(f"{row.vendor} {n}")
        if "GB" not in n:
            out.add(n.replace(" ", ""))
    return out


def test_each_entry_answers_to_its_own_names_and_no_other_entry_takes_them():
    """No substitution: every spelling of an entry's id, name or aliases names that entry alone, so no
    other entry's name resolves to it."""
    for row in _table():
        for name in _spellings(row):
            ids, _ = candidates(name)
            assert ids == [row.id], (row.id, name, ids)


def test_entry_names_are_unique_lookup_keys():
    from vramcalc.gpus import _keys, _memory_fits
    rows = _table()
    for a in rows:
        for b in rows:
            if a.id < b.id and _keys(a) & _keys(b):  # a shared key must be told apart by memory or cores
                assert a.gpu_cores != b.gpu_cores or a.memory_gib != b.memory_gib, (a.id, b.id)
                assert not (_memory_fits(a, b.memory_gib) and _memory_fits(b, a.memory_gib)
                            and a.gpu_cores == b.gpu_cores), (a.id, b.id)


@pytest.mark.parametrize("query,gpu_id", [
    ("RTX 4070 Ti", "rtx-4070-ti"), ("RTX 4070 Ti SUPER", "rtx-4070-ti-super"), ("H20", "h20"),
    ("M3", "apple-m3"), ("M4", "apple-m4"), ("M4 Max 36GB", "apple-m4-max-32c"), ("36 GB M4 Max", "apple-m4-max-32c"),
    ("M4 Max (64GB)", "apple-m4-max"), ("Apple M4 Max (40-core GPU)", "apple-m4-max"), ("rtx4070", "rtx-4070"),
    ("GeForce RTX 4090", "rtx-4090"), ("RTX 4090 Laptop", "rtx-4090-laptop"), ("rtx 4090 mobile", "rtx-4090-laptop"),
    ("RTX 4060 Ti 16GB", "rtx-4060-ti-16gb"), ("RX 7900 XT", "rx-7900-xt"), ("RX 7900 XTX", "rx-7900-xtx"), ("nvidia-a100-80gb-sxm", "a100-80gb-sxm"), ("A100 80GB SXM4", "a100-80gb-sxm"),
])
def test_a_name_never_becomes_its_neighbour(query, gpu_id):
    g = find_gpu(query)
    assert g.id == gpu_id and g.note_code != "gpu.ambiguous_name"


def test_the_36gb_m4_max_has_the_binned_bandwidth():
    assert find_gpu("M4 Max 36GB").memory_bandwidth_gbs == 410  # the 40-core bins have 546
    assert find_gpu("M4 Max 48GB").memory_bandwidth_gbs == 546


@pytest.mark.parametrize("query,pick,named", [
    ("h100", "h100-pcie", {"h100-pcie", "h100-sxm", "h100-nvl"}),
    ("m4 max", "apple-m4-max-32c", {"apple-m4-max", "apple-m4-max-32c"}),
    ("a100", "a100-40gb-pcie", {"a100-40gb-pcie", "a100-40gb-sxm", "a100-80gb-pcie", "a100-80gb-sxm"}),
    ("v100", "v100-sxm2-16gb", {"v100-sxm2-16gb", "v100-sxm2-32gb", "v100-pcie-32gb"}),
])
def test_an_ambiguous_name_takes_the_least_memory_and_says_so(query, pick, named):
    g = find_gpu(query)
    assert g.id == pick and g.note_code == "gpu.ambiguous_name"
    assert set(candidates(query)[0]) == named


@pytest.mark.parametrize("query,first", [("rtx 4091", "rtx-4090"), ("h1000", "h100-"), ("mi301x", "mi300x"),
                                         ("rx 7800 xtx", "rx-7800-xt")])
def test_unknown_names_are_refused_with_the_closest_model_numbers(query, first):
    with pytest.raises(UnknownGPUError) as e:
        find_gpu(query)
    assert f"did you mean {first}" in str(e.value) and e.value.code == "gpu.unknown"


@pytest.mark.parametrize("text", ["3090x2", "2x3090", "3090 x 2", "2 x 3090", "3090:2", "rtx 3090x2"])
def test_counts_before_or_after_the_name(text):
    assert [g.id for g in parse_system(text).gpus] == ["rtx-3090"] * 2


def test_every_gpu_entry_names_a_source_a_reader_can_open():
    """A URL, or a named vendor document (datasheet, product page or brief, whitepaper, newsroom,
    technical specifications) or a named spec-database entry."""
    named = ("http", "datasheet", "product page", "product brief", "whitepaper", "newsroom", "technical specifications",
             "technical brief", "gpu database")
    raw = json.loads(_text("gpus.json"))["gpus"]
    for row in raw:
        assert row["sources"], row["id"]
        assert any(any(w in s.lower() for w in named) for s in row["sources"]), row["id"]
        assert row["verification"] in ("vendor_datasheet", "cross_checked", "unverified"), row["id"]


def test_the_ambiguity_note_keeps_its_code_through_a_system():
    s = parse_system("2xh100")
    assert [s.note_code(n) for n in s.notes] == ["gpu.ambiguous_name"]
    assert parse_system("2x4090-1.5GiB").notes == []


@pytest.mark.parametrize("text,gpu_id,gib,usable_gib,note_code", [
    ("M4 Max 48GB", "apple-m4-max", 48, 36, None),  # Metal's working set: three quarters above 36 GiB
    ("M4 Max(64GiB)", "apple-m4-max", 64, 48, None),  # the RAM in () picks the bin sold with it
    ("M4 Max(36GB)", "apple-m4-max-32c", 36, 24, "gpu.unverified"),
    ("Apple M5", "apple-m5", 16, 16 * 0.666667, "gpu.memory_assumed"),
    ("780M 64GB", "radeon-780m", 64, 32, "gpu.unverified"),  # half the host's RAM (data/unified_memory.json pc-igpu)
    ("Intel(R) UHD Graphics", "intel-uhd-graphics", 8, 4, "gpu.memory_assumed"),
])
def test_a_named_memory_size_is_the_gpus_memory(text, gpu_id, gib, usable_gib, note_code):
    s = parse_system(text)
    [g] = s.gpus
    assert (g.id, g.memory_bytes / 2**30) == (gpu_id, gib)
    assert g.usable_bytes / 2**30 == pytest.approx(usable_gib, abs=0.01)
    assert [s.note_code(n) for n in s.notes] == ([note_code] if note_code else [])
