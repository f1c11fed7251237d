"""--spec-type against llama.cpp's own speculative code (tests/data/llamacpp_spec_limits.json: common/speculative.cpp
of 4df29be run by tools/record_spec_limits.py): the drafted tokens a step (common_speculative_n_max), the output rows
llama-server reserves (common_speculative_get_output_limits, as server_output_limits calls it), whether
common_speculative_init makes a speculative context without a draft model, and the host bytes it keeps (the ngram
types' tables; vramcalc counts the fixed ones, llama.cpp's own small bookkeeping beside them is not counted)."""

import json
from pathlib import Path

import pytest

from vramcalc.errors import InputError
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.builds import resolve_build
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.pasted_command import read_command
from vramcalc.sources.catalog import load

DATA = json.loads((Path(__file__).parent / "data" / "llamacpp_spec_limits.json").read_text())
SLACK = 64 * 1024  # llama.cpp's objects beside the tables (the impls, their configs): measured at most 18 KiB here


def _opts(run: dict) -> LlamaOptions:
    return LlamaOptions(
        ftype="Q4_K_M", n_ctx=8192, n_parallel=run["n_seq"], n_batch=run["n_batch"],
        n_ubatch=min(512, run["n_batch"]), spec_types=tuple(t for t in run["types"] if t != "none"),
        draft_max=run["draft_n_max"], spec_ngram_mod_n_max=run["ngram_mod_n_max"],
        spec_ngram_simple_size_m=run["ngram_simple_size_m"], spec_ngram_map_k_size_m=run["ngram_map_k_size_m"],
        spec_ngram_map_k4v_size_m=run["ngram_map_k4v_size_m"])


def test_the_recording_is_of_the_modelled_build():
    assert DATA["llama_cpp_commit"] == resolve_build("latest").label.split()[0] == "4df29be"
    assert DATA["produced_by"] == "tools/record_spec_limits.py" and len(DATA["runs"]) >= 10


@pytest.mark.parametrize("run", DATA["runs"], ids=lambda r: f"{','.join(r['types'])}-{r['n_seq']}x{r['n_batch']}")
def test_spec_types_as_llama_cpp_sizes_them(run):
    if run["error"].startswith("unknown speculative type"):  # --spec-type's handler throws: llama-server stops
        with pytest.raises(InputError) as e:
            read_command(f"llama-server -m Qwen3-8B-Q4_K_M.gguf --spec-type {','.join(run['types'])}")
        assert str(e.value) == f'llama-server: error while handling argument "--spec-type": {run["error"]}'
        return
    opts = _opts(run)
    assert opts.spec_n_max == run["n_max"]
    assert opts.outputs_reserved == run["outputs_total"]
    assert opts.speculates(resolve_build(opts.build)) is run["speculates"]  # no -md: the ngram types alone
    res = check_llamacpp(load("qwen3-8b"), [find_gpu("4090")], opts, None, solve=False)
    counted = sum(e.host_bytes for e in res.extras if e.kind == "spec")
    if run["speculates"]:
        assert counted <= run["heap_bytes"] <= counted + SLACK
    elif run["types"] == ["none"]:
        assert run["heap_bytes"] == counted == 0 and not run["error"]
    else:  # common_speculative_init threw: what it made is freed; vramcalc counts the tables as made at load
        assert run["error"] == "draft-simple requires a draft context" and run["heap_bytes"] <= counted + SLACK
        assert "llamacpp.spec.no_draft" in {w.code for w in res.warnings}
