"""The catalog's index, aliases, suggestions and quantized releases (issue 24)."""

import json
import subprocess
import sys

import pytest

from conftest import CATALOG, DATA
from vramcalc.params import count_params
from vramcalc.sources import catalog, load_model

ROOT = CATALOG.parent.parent.parent
ORACLE = json.loads((DATA / "param_oracle.json").read_text())["models"]


def test_index_is_current():
    sys.path.insert(0, str(ROOT / "tools"))
    import catalog_index

    assert (CATALOG.parent / "models_index.json").read_text() == catalog_index.text(), \
        "run: PYTHONPATH=$PWD python tools/catalog_index.py"


def test_one_lookup_parses_the_index_and_one_model_file():
    """`check` on one model reads the index and that model's file, not the whole catalog."""
    code = (
        "import vramcalc.data_files as df\n"
        "seen = []\n"
        "orig = df.parse\n"
        "df.parse = lambda text, model, where: (seen.append(where), orig(text, model, where))[1]\n"
        "from vramcalc.sources import load_model\n"
        "load_model('gemma-4-31b')\n"
        "print([w for w in seen if 'models' in w])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == str(["vramcalc/data/models_index.json", "vramcalc/data/models/google__gemma-4-31B-it.json"])


def test_every_alias_resolves_to_its_own_model():
    for m in catalog._index().models:
        for alias in m.aliases:
            assert catalog.resolve(alias) == m.repo_id, (alias, m.repo_id)


@pytest.mark.parametrize("typed,repo", [
    ("gemma-4-31b", "google/gemma-4-31B-it"),
    ("gemma4-31b", "google/gemma-4-31B-it"),
    ("Gemma-4-31B-it", "google/gemma-4-31B-it"),
    ("gemma-4-26b", "google/gemma-4-26B-A4B"),
    ("gemma-4-e2b", "google/gemma-4-E2B-it"),
    ("gemma-4-E4B", "google/gemma-4-E4B-it"),
    ("qwen3.5-35b-a3b", "Qwen/Qwen3.5-35B-A3B"),
    ("qwen3.5-27b", "Qwen/Qwen3.5-27B"),
    ("llama-2-7b", "meta-llama/Llama-2-7b-hf"),
    ("llama2-70b", "meta-llama/Llama-2-70b-hf"),
    ("tinyllama", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"),
    ("gemma-2-2b", "google/gemma-2-2b-it"),
    ("nemotron-3-nano", "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"),
    ("qwen3-32b-fp8", "Qwen/Qwen3-32B-FP8"),
    ("qwen-3-32b", "Qwen/Qwen3-32B"),
    ("minimax-m2.5", "MiniMaxAI/MiniMax-M2.5"),
    ("qwen3-vl-8b", "Qwen/Qwen3-VL-8B-Instruct"),
    ("kimi-k2.5", "moonshotai/Kimi-K2.5"),
    ("Kimi-K2.5", "moonshotai/Kimi-K2.5"),
    ("nemotron-3-super-fp8", "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8"),
    ("nemotron-super-nvfp4", "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4"),
    ("glm-4.7", "zai-org/GLM-4.7"),
    ("glm-4.6", "zai-org/GLM-4.6"),
    ("GLM4.7", "zai-org/GLM-4.7"),
    ("qwen3.5-9b", "Qwen/Qwen3.5-9B"),
    ("Qwen3.5-0.8B", "Qwen/Qwen3.5-0.8B"),
    ("qwen3.5-2b", "Qwen/Qwen3.5-2B"),
])
def test_names_people_type(typed, repo):
    assert catalog.resolve(typed) == repo


@pytest.mark.parametrize("typo,first,never", [
    ("gema-4-31b", "gemma-4-31b", "gemma-3-1b"),
    ("gemma-4-32b", "gemma-4-31b", "gemma-3-1b"),
    ("gemma-4-31b-instruct", "gemma-4-31b-it", "gemma-3-1b"),
    ("qwen3.5-35b-a3", "qwen3.5-35b-a3b", None),
    ("llama-3.3-70b-instrcut", "llama-3.3-70b-instruct", None),
    ("lama-3.1-8b", "llama-3.1-8b", None),
    ("qwen3-33b", "qwen3-32b", None),
])
def test_suggestions_rank_same_family_and_size_first(typo, first, never):
    assert catalog.resolve(typo) is None
    close = catalog.suggestions(typo)
    assert close[0] == first, close
    assert never not in close


def test_quantized_releases_point_at_their_base_and_carry_their_config():
    """Same architecture as the base model (equal counts where the base copy is complete), and
    the release's own quantization_config (or ModelOpt hf_quant_config.json)."""
    released = [m for m in catalog._index().models if m.base_model]
    assert len(released) >= 10
    for m in released:
        assert m.base_model in catalog._repos(), m.repo_id
        spec = load_model(m.repo_id)
        assert spec.quantization_config, m.repo_id
        base_partial = json.loads((CATALOG / catalog._repos()[m.base_model]).read_text())["partial"]
        if not base_partial:
            assert count_params(spec).total == count_params(load_model(m.base_model)).total, m.repo_id


def test_gemma_4_31b_answers_from_the_full_config_with_its_vision_tower():
    """`vramcalc check gemma-4-31b --gpu 4x3090 --engine vllm --tp 4 --quant awq --ctx 32768`:
    the model is google/gemma-4-31B-it's complete config, counted as transformers counts it
    (vision tower included)."""
    spec = load_model("gemma-4-31b")
    assert spec.id == "google/gemma-4-31B-it" and not any("partial" in n for n in spec.notes)
    counts = count_params(spec)
    oracle = ORACLE["google__gemma-4-31B-it"]
    assert counts.total == oracle["total"] and counts.by_group["vision"] == oracle["by_group"]["vision"] > 0
    out = subprocess.run([sys.executable, "-m", "vramcalc", "check", "gemma-4-31b", "--gpu", "4x3090", "--engine",
                          "vllm", "--tp", "4", "--quant", "awq", "--ctx", "32768", "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    assert report["model"] == {"id": "google/gemma-4-31B-it", "params_total": oracle["total"],
                               "params_active": counts.active}
    assert len(report["devices"]) == 4
