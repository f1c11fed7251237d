"""Library calls from several threads at once give the results one thread gives, with the memos
evicting under them (a budget of a few layers forces eviction on every call)."""

from concurrent.futures import ThreadPoolExecutor

import pytest

import vramcalc
from vramcalc import cache_kinds, params
from vramcalc.llamacpp import engine as llama_engine
from vramcalc.vllm import weights as vllm_weights

MODELS = ["llama-3.1-8b", "qwen3-30b-a3b", "gemma-3-27b-it", "deepseek-v2-lite", "falcon-h1-7b-instruct",
          "gpt-oss-20b"]


def _figures(name: str) -> tuple:
    spec = vramcalc.load_model(name)
    r = vramcalc.check(spec, "rtx4090", context=4096)
    return name, r.weights_bytes, r.kv_bytes, r.state_bytes, r.fits


@pytest.fixture()
def tiny_memos(monkeypatch):
    for memo in (cache_kinds._CACHE_LAYERS, params._MEMO, llama_engine._RUNS_AS, vllm_weights._MEMO):
        monkeypatch.setattr(memo, "budget", 8)
        memo.clear()


def test_threads_agree_with_one_thread_while_memos_evict(tiny_memos):
    serial = [_figures(m) for m in MODELS]
    with ThreadPoolExecutor(8) as ex:
        parallel = list(ex.map(_figures, MODELS * 6))
    assert parallel == serial * 6
