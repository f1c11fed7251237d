"""--spec-type draft-eagle3 -md DRAFT (vramcalc/llamacpp/eagle3.py) against a real llama.cpp 4df29be: the buffers it
printed and allocated for the target and the EAGLE-3 draft context (tests/data/llamacpp_eagle3_runs.json, recorded by
tools/record_llamacpp_eagle3.py on the targets of tests/llamacpp_models.py and the drafts of
tests/llamacpp_eagle3_models.py, written again here)."""

from __future__ import annotations

from functools import lru_cache

import pytest

import llamacpp_eagle3_models as em
import llamacpp_models as lm
from llamacpp_models import mib
from vramcalc.llamacpp import eagle3
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.llamacpp.graphs import Reserve, build_eagle3, eagle3_peak
from vramcalc.llamacpp.kv import output_buffer_bytes
from vramcalc.pasted_command import read_command
from vramcalc.sources import open_model

RECORDED = lm.recorded("llamacpp_eagle3_runs")
RUNS = RECORDED["runs"]
SPECULATED = [r for r in RUNS if r.get("speculates") == 1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("eagle3")
    for name in {r["target"] for r in RUNS} | {r["draft"] for r in RUNS}:
        (em.write if name in em.MODELS else lm.write_gguf)(name, t / f"{name}.gguf")
    return t


@lru_cache(maxsize=None)
def _src(path: str):
    return open_model(path)


def _opts(files, run: dict, **kw) -> LlamaOptions:
    return LlamaOptions(n_ctx=run["n_ctx"], n_parallel=run["n_parallel"], kv_unified=run["kv_unified"],
                        n_batch=run["n_batch"],
                        n_ubatch=run["n_ubatch"], draft_max=run["draft_n_max"], flash_attn=run["flash_attn"],
                        type_k=run["type_k"].upper(), type_v=run["type_v"].upper(),
                        type_k_draft=run["type_k_draft"].upper(), type_v_draft=run["type_v_draft"].upper(),
                        model_draft=str(files / f"{run['draft']}.gguf"), spec_types=("draft-eagle3",),
                        draft_backend_sampling=run["backend_sampling"], **kw)


def _check(files, run: dict):
    src = _src(str(files / f"{run['target']}.gguf"))
    return src.spec, check_llamacpp(src.spec, None, _opts(files, run), src.llama_tensors(), solve=False)


def _printed(run: dict, context: str, kind: str, buffer: str | None = None) -> list[float]:
    return [b["mib"] for b in run["buffers"] if b["context"] == context and b["kind"] == kind
            and (buffer is None or b["buffer"] == buffer)]


def _allocs(run: dict, phase: str, by_output: bool, buft: str | None = None) -> list[int]:
    """The buffers libllama allocated in a phase, in bytes: the output buffers (llama_context::output_reserve) or the
    others (the KV cache's, then the compute buffers, allocated inside libggml)."""
    return [a["bytes"] for a in run["allocs"] if a["phase"] == phase and a["bytes"]
            and ("output_reserve" in a["by"]) == by_output and (buft is None or a["buft"] == buft)]


def _id(r: dict) -> str:
    return f"{r['target']}-{r['draft']}-c{r['n_ctx']}-np{r['n_parallel']}-ub{r['n_ubatch']}-fa{r['flash_attn']}-" \
           f"{r['type_k_draft']}-bs{int(r['backend_sampling'])}-u{int(r['kv_unified'])}"


def test_the_recording_is_the_modelled_build():
    assert RECORDED["llama_cpp_commit"].startswith("4df29be") and \
        RECORDED["produced_by"] == "tools/record_llamacpp_eagle3.py"
    assert len(RUNS) == 33 and len(SPECULATED) == 30
    assert {r["draft"] for r in SPECULATED} == {"eagle3-a", "eagle3-own", "eagle3-wide", "eagle3-last"}
    assert {r["target"] for r in SPECULATED} == {"llama-a", "qwen3", "qwen3moe"}
    assert {r["kv_unified"] for r in SPECULATED} == {True, False}
    assert all(r["decode"] == 0 and r["process"] == 1 and r["exit"] == 0 for r in SPECULATED)


@pytest.mark.parametrize("run", SPECULATED, ids=_id)
def test_target_buffers_as_llama_cpp_allocates_them(run, files):
    """The target's weights and KV as printed; its compute buffer as re-reserved once llama_set_embeddings_layer_inp
    marked the target layers' inputs as graph outputs (printed at the first decode); its output buffer once that
    decode's output_reserve added n_embd x n_batch floats per extracted layer (allocated, in bytes)."""
    spec, r = _check(files, run)
    assert not r.errors
    host = next(d for d in r.devices if d.device == "host RAM")
    assert mib(host.model_buffer_bytes) == sum(_printed(run, "target", "model"))
    assert mib(host.kv_buffer_bytes) == sum(_printed(run, "target", "KV"))
    (re_reserved,) = _printed(run, "target_decode", "compute")
    assert mib(host.compute_buffer_bytes) == re_reserved > _printed(run, "target", "compute")[0]
    # the recorded decode asked one output per slot; vramcalc's buffer holds llama-server's drafted rows beside
    (after_decode,) = _allocs(run, "target_decode", True)
    extra = host.output_buffer_bytes - output_buffer_bytes(spec, _opts(files, run).output_rows)
    assert after_decode == output_buffer_bytes(spec, run["n_parallel"]) + extra


@pytest.mark.parametrize("run", SPECULATED, ids=_id)
def test_draft_context_buffers_as_llama_cpp_allocates_them(run, files):
    """The EAGLE-3 draft's weights (CPU_Mapped and, for Q4_0, CPU_REPACK) and its one layer's KV (-ctkd / -ctvd) as
    printed; its compute buffer: sched_reserve's graphs at load and once the backend samplers are set, replayed, equal
    to the printed sizes, and vramcalc's figure (those and the decoder at smaller cache fills) at least every compute
    buffer llama.cpp allocated; its output buffer the encoder's output_reserve of n_ubatch rows (allocated, in
    bytes)."""
    _, r = _check(files, run)
    (e,) = [x for x in r.extras if x.kind == "draft"]
    assert mib(int(e.detail["model"]) - int(e.detail["repack"])) == sum(_printed(run, "draft", "model", "CPU_Mapped"))
    assert mib(int(e.detail["repack"])) == sum(_printed(run, "draft", "model", "CPU_REPACK"))
    assert mib(int(e.detail["kv"])) == sum(_printed(run, "draft", "KV"))
    # sched_reserve's graphs replayed: at load (no sampler yet) and once the samplers are set (printed in process)
    dspec, f = _src(str(files / f"{run['draft']}.gguf")).spec, eagle3.read_eagle3(str(files / f"{run['draft']}.gguf"))
    n_ub = min(run["n_ubatch"], run["n_batch"])
    fa, uni = r.flash_attn, run["kv_unified"]
    n_kv = run["n_ctx"] if uni else run["n_ctx"] // run["n_parallel"]  # cells of one stream
    at_load, with_samplers = (eagle3_peak(dspec, eagle3.head(dspec, f, bs), run["n_ctx"], n_ub, run["n_parallel"],
                                          n_kv, uni, fa, run["type_k_draft"].upper(),
                                          run["type_v_draft"].upper()) for bs in (False, run["backend_sampling"]))
    (printed_at_load,) = _printed(run, "draft", "compute")
    assert mib(at_load) == printed_at_load
    if run["backend_sampling"]:
        (printed,) = _printed(run, "process", "compute")
        assert mib(with_samplers) == printed
    else:
        assert not _printed(run, "process", "compute")
    # vramcalc's figure holds every compute buffer llama.cpp allocated for the draft, including a decode's growth past
    # the reservation (eagle3-own without samplers: test_a_decode_can_outgrow_the_reservation)
    computes = _allocs(run, "draft", False, "CPU")[1:] + _allocs(run, "process", False, "CPU")  # [0]: the KV cache
    swept = eagle3_peak(dspec, eagle3.head(dspec, f, run["backend_sampling"]), run["n_ctx"], n_ub, run["n_parallel"],
                        n_kv, uni, fa, run["type_k_draft"].upper(), run["type_v_draft"].upper(),
                        sweep_to=eagle3.REALLOC_SWEEP_CELLS)
    assert int(e.detail["compute"]) == swept >= max(computes) >= with_samplers
    assert int(e.detail["output"]) == max(_allocs(run, "process", True))
    host = next(d for d in r.devices if d.device == "host RAM")
    assert host.draft_bytes == e.host_bytes == e.detail["model"] + e.detail["kv"] + e.detail["compute"] + \
        e.detail["output"]


def test_a_decode_can_outgrow_the_reservation(files):
    """eagle3-own without samplers: a process decode at 512 cached cells needed 0.5 MiB more than sched_reserve's
    graph at the full cache (llama.cpp warned 'does not match expectation'); the decoder replayed at n_kv 512 needs
    exactly the bytes llama.cpp allocated, and vramcalc's figure (the replay at every fill up to 8192 cells) holds
    it."""
    from vramcalc.llamacpp.galloc import peak_bytes
    run = next(r for r in SPECULATED if r["draft"] == "eagle3-own" and r["n_ctx"] == 4096 and r["n_parallel"] == 4
               and not r["backend_sampling"])
    (grown,) = _allocs(run, "process", False)
    dspec, f = _src(str(files / "eagle3-own.gguf")).spec, eagle3.read_eagle3(str(files / "eagle3-own.gguf"))
    assert grown > max(_allocs(run, "draft", False))
    assert peak_bytes(build_eagle3(dspec, Reserve(512, 1, 512, 512, 0, 1, True, "F16", "F16"),
                                   eagle3.head(dspec, f, False)), 32) == grown
    (e,) = [x for x in _check(files, run)[1].extras if x.kind == "draft"]
    assert e.detail["compute"] >= grown


def test_backend_sampling_grows_the_draft_buffers(files):
    """--no-spec-draft-backend-sampling: no sampler re-reserve and an output buffer without the samplers' rows."""
    on, off = (next(r for r in SPECULATED if r["draft"] == "eagle3-own" and r["n_ctx"] == 4096 and r["n_parallel"] == 4
                    and r["backend_sampling"] is x) for x in (True, False))
    assert max(_allocs(on, "process", True)) > 3 * max(_allocs(off, "process", True))
    (e_on,), (e_off,) = ([x for x in _check(files, run)[1].extras if x.kind == "draft"] for run in (on, off))
    assert e_on.detail["compute"] > e_off.detail["compute"] and e_on.detail["output"] > e_off.detail["output"]


def test_a_target_layer_id_equal_to_n_layer_adds_nextn_rows(files):
    """eagle3-last names the target's n_layer (6): llama_set_embeddings_nextn (unmasked) on the target, n_embd x
    n_batch floats like a layer input (the recorded output buffer is the same as with three layer inputs)."""
    (last,) = [r for r in SPECULATED if r["draft"] == "eagle3-last"]
    base = next(r for r in SPECULATED if r["draft"] == "eagle3-a" and r["target"] == "llama-a" and r["n_ctx"] == 4096
                and r["n_parallel"] == 4 and r["backend_sampling"] and r["kv_unified"])
    assert _allocs(last, "target_decode", True) == _allocs(base, "target_decode", True)


def test_a_draft_without_target_layers_is_refused_in_llama_cpps_words(files):
    (run,) = [r for r in RUNS if r["draft"] == "eagle3-nolayers"]
    assert run["fail"] == "draft_model"
    _, r = _check(files, run)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.eagle3"]
    said = [s for s in run["said"] if "error loading model" in s or "failed to load draft model" in s]
    assert len(said) == 2 and all(s in err.text.replace(str(files) + "/", "") for s in said) and not r.fits


def test_a_target_layer_past_the_target_aborts(files):
    (run,) = [r for r in RUNS if r["draft"] == "eagle3-far"]
    assert run["exit"] == -6
    _, r = _check(files, run)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.eagle3"]
    assert "EAGLE3: target layer id 9 exceeds target n_layer 6" in err.text
    assert any("EAGLE3: target layer id 9 exceeds target n_layer 6" in s for s in run["said"])


def test_a_draft_that_is_not_eagle3_speculates_nothing(files):
    """A llama GGUF as -md with draft-eagle3: the draft loads and gets its context (recorded), then
    common_speculative_init throws and llama-server serves without speculation."""
    (run,) = [r for r in RUNS if r["draft"] == "llama-a"]
    assert run["speculates"] == 0
    said = ("failed to initialize speculative decoding context: draft model is not eagle3 (expected 3 extract "
            "layers, got 0)")
    assert said in run["said"]
    _, r = _check(files, run)
    (w,) = [m for m in r.warnings if m.code == "llamacpp.spec.not_eagle3"]
    assert said in w.text and not r.errors
    (e,) = [x for x in r.extras if x.kind == "draft"]
    assert not e.detail["speculates"] and mib(int(e.detail["kv"])) == sum(_printed(run, "draft", "KV"))


def test_draft_eagle3_without_a_draft_model_warns(files):
    src = _src(str(files / "llama-a.gguf"))
    r = check_llamacpp(src.spec, None, LlamaOptions(n_ctx=4096, spec_types=("draft-eagle3",)), src.llama_tensors(),
                       solve=False)
    assert [m.code for m in r.warnings if m.code.startswith("llamacpp.spec")] == ["llamacpp.spec.no_draft"]
    assert not [x for x in r.extras if x.kind == "draft"]


def test_ngld_places_the_eagle3_draft(files):
    """-ngld 0 keeps the head on the host; -ngld all puts its block and output layer (fc, norms) on the GPU."""
    from vramcalc.gpus import find_gpu
    run = SPECULATED[0]
    src = _src(str(files / f"{run['target']}.gguf"))
    on_host, on_gpu = (check_llamacpp(src.spec, find_gpu("rtx-4090"), _opts(files, run, n_gpu_layers=999,
                                                                              n_gpu_layers_draft=n),
                                      src.llama_tensors(), solve=False) for n in (0, 999))
    (h,), (g,) = ([x for x in r.extras if x.kind == "draft"] for r in (on_host, on_gpu))
    assert h.detail["gpu_layers"] == 0 and g.detail["gpu_layers"] == 1 and "-ngld 999" in on_gpu.command
    assert g.gpu_bytes[0] - h.gpu_bytes[0] >= g.detail["model"] + g.detail["kv"] - h.detail["model"] // 2
    assert h.host_bytes > g.host_bytes


def test_other_targets_and_another_spec_type_are_not_modelled(files):
    from vramcalc.errors import NotModelledError
    run = SPECULATED[0]
    src = _src(str(files / "llama-a.gguf"))
    other = src.spec.model_copy(update={"architecture": "gguf:qwen3next"})  # keeps layer inputs, not recorded
    with pytest.raises(NotModelledError, match="modelled for llama, qwen3, qwen3moe targets"):
        check_llamacpp(other, None, _opts(files, run), src.llama_tensors(), solve=False)
    # a graph that keeps no layer inputs: llama.cpp aborts reserving the target's graph (as for draft-dflash)
    gemma = src.spec.model_copy(update={"architecture": "gguf:gemma3"})
    r = check_llamacpp(gemma, None, _opts(files, run), src.llama_tensors(), solve=False)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.eagle3"]
    assert "layer input tensor is null" in err.text and "gemma3" in err.text
    with pytest.raises(NotModelledError, match="EAGLE-3 head"):
        check_llamacpp(src.spec, None, _opts(files, run).model_copy(update={"spec_types": ("draft-simple",)}),
                       src.llama_tensors(), solve=False)


def test_pasted_draft_eagle3_is_modelled():
    p, r = read_command("llama-server -m x.gguf -md eagle3-x.gguf --spec-type draft-eagle3 "
                        "--no-spec-draft-backend-sampling -ngld 0")
    assert r.options["spec_types"] == ("draft-eagle3",) and r.options["draft_backend_sampling"] is False
    assert r.options["model_draft"] == "eagle3-x.gguf" and r.options["n_gpu_layers_draft"] == 0
    assert not [w for w in r.warnings if w.code == "command.not_modelled"]
    assert any(w.code == "command.speed_not_estimated" and "draft-eagle3" in w.text for w in r.warnings)
    _, on = read_command("llama-server -m x.gguf -md e.gguf --spec-type draft-eagle3 --spec-draft-backend-sampling")
    assert on.options["draft_backend_sampling"] is True


def test_cli_reports_the_eagle3_draft(files, capsys):
    from vramcalc.cli import main
    assert main(["check", "--gpu", "cpu", "--", "llama-server", "-m", str(files / "llama-a.gguf"), "-c", "4096",
                 "-md", str(files / "eagle3-a.gguf"), "--spec-type", "draft-eagle3"]) in (0, 1)
    out = capsys.readouterr().out
    assert "an EAGLE-3 head on the target's layers 1,3,4, backend sampling on" in out


def test_a_pasted_command_reports_the_eagle3_drafts_figures(files):
    """`check -- llama-server ... -md HEAD --spec-type draft-eagle3` on a CPU: the same figures as the recorded run."""
    from vramcalc.pasted_command import check_command
    run = SPECULATED[0]
    c = check_command(f"llama-server -m {files}/{run['target']}.gguf -c {run['n_ctx']} -np {run['n_parallel']} "
                      "--kv-unified "
                      f"-md {files}/{run['draft']}.gguf --spec-type draft-eagle3 -ngl 0", "cpu",
                      host_ram_bytes=64 * 2**30)
    (e,) = [x for x in c.result.extras if x.kind == "draft"]
    assert mib(int(e.detail["kv"])) == sum(_printed(run, "draft", "KV"))
    assert int(e.detail["output"]) == max(_allocs(run, "process", True))
    host = c.result.devices[-1]
    assert mib(host.compute_buffer_bytes) == _printed(run, "target_decode", "compute")[0]
    assert not [w for w in c.warnings if w.code == "command.not_modelled"]
