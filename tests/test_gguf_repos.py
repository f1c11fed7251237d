"""data/gguf_repos.json: GGUF releases of catalog models with their files and sizes as their READMEs print them,
and vramcalc's predicted file size for each standard llama.cpp file type against the published one."""

import re

import pytest

from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import entries, gguf_repos, load

# bartowski's _L variants (embed and output at Q8_0) and MXFP4 have no --quant gguf: name; the rest are file types
STANDARD = {"BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_1", "Q4_K_M", "Q4_K_S", "Q4_0"}


def test_every_repo_names_a_catalog_model_a_source_and_sized_files():
    catalog = {e.repo_id: e for e in entries()}
    for repo, g in gguf_repos().repos.items():
        assert g.base_model in catalog and repo in catalog[g.base_model].gguf_repos, repo
        assert g.source.startswith(f"https://huggingface.co/{repo} "), repo
        assert g.complete or g.not_recorded, repo
        for f in g.files:
            assert f.file.endswith(".gguf") and f.quant.lower() in f.file.lower(), (repo, f.file)
            m = re.fullmatch(r"(\d+\.\d+)GB", f.size_printed)
            assert m and float(m.group(1)) == f.size_gb > 0, (repo, f.file)


def _cases():
    for repo, g in gguf_repos().repos.items():
        if g.ffn_kept:  # the quant name does not give the tensor types
            continue
        for f in g.files:
            if f.quant in STANDARD:
                yield pytest.param(g.base_model, f.quant, f.size_printed, id=f"{repo}:{f.quant}")


@pytest.mark.parametrize("base,quant,printed", list(_cases()))
def test_the_predicted_file_size_matches_the_published_one(base, quant, printed):
    """The tensor bytes vramcalc predicts for a file type (llama.cpp's per-tensor type rules) against the size the
    repository's README prints: the file adds its metadata (tokenizer, a few MB) to the tensors, so the prediction
    lies just below, within 1% (measured: -0.05% to -0.7% on these 12 files)."""
    r = check_llamacpp(load(base), None, LlamaOptions(ftype=quant, n_ctx=512), solve=False)
    digits = printed.removesuffix("GB")
    half = 0.5 * 10 ** -len(digits.split(".")[1])
    low, high = (float(digits) - half) * 1e9, (float(digits) + half) * 1e9
    assert 0.99 * low <= r.model_size_bytes <= high, (r.model_size_bytes, printed)
