import pytest

from conftest import CATALOG
from vramcalc.errors import UnknownGPUError, UnknownModelError
from vramcalc.gpus import find_gpu
from vramcalc.sources import catalog, load_model

GIB = 1024**3


@pytest.mark.parametrize("alias,repo", [
    ("qwen3-32b", "Qwen/Qwen3-32B"),
    ("llama-3.3-70b", "meta-llama/Llama-3.3-70B-Instruct"),
    ("gpt-oss-120b", "openai/gpt-oss-120b"),
    ("Meta-Llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
    ("llama-3.1-8b", "meta-llama/Llama-3.1-8B"),  # the base model wins the short name
    ("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct"),
])
def test_aliases(alias, repo):
    assert catalog.resolve(alias) == repo
    assert load_model(alias).id == repo


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError) as e:
        load_model("qwen3-33b")
    assert "did you mean" in str(e.value) and "qwen3-32b" in str(e.value)


def test_every_catalog_entry_reads():
    """`vramcalc models` lists only models that check: a partial copy is completed from the model
    it names in architecture_from, or by a catalog_fixes line that says where the value comes from."""
    for e in catalog.entries():
        spec = load_model(e.repo_id)
        if e.partial:
            assert any("partial" in n for n in spec.notes), e.repo_id


def test_completed_partial_copies_match_their_published_counts():
    from vramcalc.params import count_params
    # the HF API's element count of the GPTQ repo (stored logical params), exactly
    assert count_params(load_model("Qwen/Qwen2.5-Coder-1.5B-Instruct-GPTQ-Int4")).total == 1_543_714_304
    c = count_params(load_model("qwen3-30b-a3b-thinking-2507-fp8"))
    assert abs(c.total / 30.5e9 - 1) < 0.005 and abs(c.active / 3.3e9 - 1) < 0.02  # model card: 30.5B / 3.3B
    c = count_params(load_model("jamba-v0.1"))
    assert abs(c.total / 51.6e9 - 1) < 0.005 and abs(c.active / 12e9 - 1) < 0.02  # AI21: 51.6B / 12B active
    assert abs(count_params(load_model("granite-4.0-h-small")).total / 32e9 - 1) < 0.01  # IBM: 32B
    spec = load_model("nvidia/Qwen3-32B-NVFP4")
    assert spec.quantization_config["quant_algo"] == "NVFP4"
    assert count_params(spec).total == count_params(load_model("qwen3-32b")).total


@pytest.mark.parametrize("query,gpu_id", [
    ("4090", "rtx-4090"), ("rtx4090", "rtx-4090"), ("RTX 4090", "rtx-4090"), ("rtx-4090", "rtx-4090"),
    ("3090", "rtx-3090"), ("h100-sxm", "h100-sxm"), ("a100-80gb-sxm", "a100-80gb-sxm"),
])
def test_gpu_names_as_people_write_them(query, gpu_id):
    assert find_gpu(query).id == gpu_id


def test_ambiguous_gpu_takes_least_memory_and_says_so():
    g = find_gpu("h200")
    assert g.id == "h200-sxm" and "least memory" in g.note


def test_custom_size():
    assert find_gpu("48GiB").memory_bytes == 48 * GIB


def test_unknown_gpu_suggests():
    with pytest.raises(UnknownGPUError) as e:
        find_gpu("rtx 4091")
    assert "rtx-4090" in str(e.value)


def test_usable_memory_is_what_cuda_reports_or_an_estimate_that_errs_low():
    h100 = find_gpu("h100-sxm")
    assert h100.usable_bytes == int(79.19 * GIB) and "CUDA-reported" in h100.usable_source
    l40 = find_gpu("l40")  # nothing recorded: datacenter GDDR (inline ECC) x 0.90, below every logged ratio
    assert l40.usable_bytes == int(48 * 0.90 * GIB) and l40.usable_source.startswith("estimated")
    assert find_gpu("l40s").usable_bytes == int(44.40 * GIB)  # vLLM issue #23230's out-of-memory message
    # A100 80GB: derived from two vLLM runs at different utilisation, (24.83 - 5.01) / 0.25
    assert find_gpu("a100-80gb-sxm").usable_bytes == int(79.28 * GIB)


def test_cross_checked_gpu_figures_equal_the_catalog():
    """data/gpu_crosschecks.json: what a public page confirmed must be what the catalog uses, and
    such an entry is marked cross_checked; every mark is one of the plain values."""
    import json

    from vramcalc.gpus import all_gpus, crosschecks

    raw = {g["id"]: g for g in json.loads((CATALOG.parent / "gpus.json").read_text())["gpus"]}
    for gpu_id, check in crosschecks().items():
        assert check.pages
        for field, value in check.figures.items():
            assert raw[gpu_id][field] == value, (gpu_id, field)
    marks = {g.id: g.verification for g in all_gpus()}
    assert all(marks[k] == "cross_checked" for k in crosschecks())
    assert set(marks.values()) <= {"vendor_datasheet", "cross_checked", "unverified"}
