import pytest

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


def test_every_catalog_entry_reads_or_is_a_marked_partial_copy():
    for e in catalog.entries():
        try:
            load_model(e.repo_id)
        except Exception:
            assert e.partial, e.repo_id


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
    l40s = find_gpu("l40s")  # nothing recorded: vendor x 0.98, below every recorded ratio
    assert l40s.usable_bytes == int(48 * 0.98 * GIB) and l40s.usable_source.startswith("estimated")
    # A100 80GB: derived from two vLLM runs at different utilisation, (24.83 - 5.01) / 0.25
    assert find_gpu("a100-80gb-sxm").usable_bytes == int(79.28 * GIB)
