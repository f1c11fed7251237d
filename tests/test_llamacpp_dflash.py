"""--spec-type draft-dflash / draft-dspark with -md (vramcalc/llamacpp/dflash.py) against a real llama.cpp 4df29be: the
buffers it printed for the target and the DFlash / DSpark drafter's context, and the output and compute buffers read
from both contexts after a prompt's target decode and common_speculative_process (tests/data/llamacpp_dflash_runs.json,
recorded by tools/record_llamacpp_dflash.py on the GGUFs of tests/llamacpp_dflash_models.py, written again here)."""

from __future__ import annotations


import pytest

import llamacpp_dflash_models as dm
import llamacpp_models as lm
from llamacpp_models import MIB, mib
from vramcalc.llamacpp.dflash import draft_output_bytes
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.llamacpp.kv import output_buffer_bytes
from vramcalc.pasted_command import read_command
from vramcalc.sources import open_model

RECORDED = lm.recorded("llamacpp_dflash_runs")
RUNS = RECORDED["runs"]
OK = [r for r in RUNS if r["exit"] == 0 and r.get("speculates")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("dflash")
    for name in {r["target"] for r in RUNS} | {r["draft"] for r in RUNS}:
        dm.write(name, t / f"{name}.gguf")
    return t


def _opts(files, run: dict, **kw) -> LlamaOptions:
    types = () if run["spec_type"] == "auto" else (run["spec_type"],)
    return LlamaOptions(n_ctx=run["n_ctx"], n_parallel=run["n_parallel"], kv_unified=True, n_batch=run["n_batch"],
                        n_ubatch=run["n_ubatch"], draft_max=run["draft_n_max"], flash_attn=run["flash_attn"],
                        type_k=run["type_k"].upper(), type_v=run["type_v"].upper(),
                        type_k_draft=run["type_k_draft"].upper(), type_v_draft=run["type_v_draft"].upper(),
                        spec_types=types, model_draft=str(files / f"{run['draft']}.gguf"),
                        draft_backend_sampling=bool(run["backend_sampling"]), **kw)


def _check(files, run: dict):
    src = open_model(str(files / f"{run['target']}.gguf"))
    return src.spec, check_llamacpp(src.spec, None, _opts(files, run), src.llama_tensors(), solve=False)


def _printed(run: dict, context: str, kind: str, buffer: str | None = None) -> float:
    return round(sum(b["mib"] for b in run["buffers"] if b["context"] == context and b["kind"] == kind
                     and (buffer is None or b["buffer"] == buffer)), 2)


def test_the_recording_is_the_modelled_build():
    assert RECORDED["llama_cpp_commit"].startswith("4df29be") and RECORDED["produced_by"] == "tools/record_llamacpp_dflash.py"
    assert len(RUNS) == 14 and len(OK) == 13 and sum(not r["backend_sampling"] for r in OK) == 3
    assert {r["types"] for r in OK} == {"draft-dflash", "draft-dspark"}


@pytest.mark.parametrize("run", OK, ids=lambda r: f"{r['draft']}-{r['spec_type']}-c{r['n_ctx']}-np{r['n_parallel']}"
                         f"-ub{r['n_ubatch']}-n{r['draft_n_max']}-fa{r['flash_attn']}-bs{r['backend_sampling']}")
def test_target_and_draft_buffers_as_llama_cpp_makes_them(run, files):
    """The target's weights, KV and compute (as created, and re-reserved with the drafter's target layer inputs kept),
    its output buffer with n_embd x n_batch floats per extracted layer; the drafter's weights, KV (-ctkd / -ctvd),
    compute (at creation, and after the backend samplers' re-reserve, byte for byte) and output buffers (at start,
    and after the prompt's encode: bytes)."""
    spec, r = _check(files, run)
    assert not r.errors
    host = next(d for d in r.devices if d.device == "host RAM")
    assert mib(host.model_buffer_bytes) == _printed(run, "target", "model", "CPU_Mapped")
    assert mib(host.repack_buffer_bytes) == _printed(run, "target", "model", "CPU_REPACK")
    assert mib(host.kv_buffer_bytes) == _printed(run, "target", "KV")
    (e,) = [x for x in r.extras if x.kind == "draft"]
    assert e.detail["type"] == run["types"]  # auto: common_speculative_types_from_gguf
    # the target after common_speculative_init: re-reserved (printed, and read back to the byte)
    assert host.compute_buffer_bytes == run["target_compute"]
    assert mib(host.compute_buffer_bytes) == _printed(run, "target_decode", "compute")
    layers = e.detail["target_layers"].split(",")
    start = output_buffer_bytes(spec, run["n_parallel"])
    assert start == run["target_output_start"]
    # the recorded decode asked for one output row: the slots' rows, and the layer inputs' n_batch rows
    assert start + spec.hidden_size * run["n_batch"] * 4 * len(layers) == run["target_output"]
    rows = LlamaOptions(n_parallel=run["n_parallel"], n_batch=run["n_batch"], draft_max=run["draft_n_max"],
                        spec_types=(run["types"],)).output_rows
    assert host.output_buffer_bytes == output_buffer_bytes(spec, rows) + spec.hidden_size * run["n_batch"] * 4 * len(layers)
    # the drafter and its context
    assert mib(e.detail["model"]) == round(_printed(run, "draft", "model", "CPU_Mapped")
                                           + _printed(run, "draft", "model", "CPU_REPACK"), 2)
    assert mib(e.detail["kv"]) == _printed(run, "draft", "KV")
    assert mib(e.detail["compute_start"]) == _printed(run, "draft", "compute")
    assert e.detail["compute"] == run["draft_compute_process"]
    assert mib(e.detail["compute"]) == _printed(run, "process", "compute")
    assert e.detail["output_start"] == run["draft_output_start"] and e.detail["n_ctx"] == run["draft_n_ctx"]
    dspec = open_model(str(files / f"{run['draft']}.gguf")).spec
    chunk = max(min(run["n_prompt"], run["n_ubatch"]), run["n_parallel"])
    bs = bool(run["backend_sampling"])
    assert draft_output_bytes(dspec.vocab_size, dspec.hidden_size, chunk, bs) == run["draft_output_process"]
    assert e.detail["output"] == draft_output_bytes(dspec.vocab_size, dspec.hidden_size, e.detail["output_rows"], bs)
    assert e.detail["output_rows"] >= chunk
    assert host.draft_bytes == e.host_bytes == (e.detail["model"] + e.detail["kv"] + e.detail["compute"]
                                                + e.detail["output"])


@pytest.mark.parametrize("run", [r for r in OK if r["draft_n_max"] > 7], ids=lambda r: f"{r['draft']}-n{r['draft_n_max']}")
def test_a_draft_size_above_the_block_is_clamped_in_llama_cpps_words(run, files):
    block = 8 if run["draft"] == "dspark-a" else 16
    n = block if run["types"] == "draft-dspark" else block - 1
    said = [s for s in run["said"] if "clamping" in s]
    _, r = _check(files, run)
    warned = [w for w in r.warnings if w.code == "llamacpp.spec.dflash_clamp"]
    if run["draft_n_max"] > n:
        (s,) = said
        assert f"exceeds the trained block size {block} -- clamping to {n}" in s
        assert warned and s.split(": ", 1)[1].split(" -- ")[0] in warned[0].text
    else:
        assert not said and not warned


def test_a_drafter_without_target_layers_is_refused_in_llama_cpps_words(files):
    (run,) = [r for r in RUNS if r["draft"] == "dflash-nolayers"]
    assert run["fail"] == "draft_context"
    assert any("DFlash model requires 'target_layers' in GGUF metadata" in s for s in run["said"])
    spec, r = _check(files, run)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.not_dflash"]
    assert "DFlash model requires 'target_layers' in GGUF metadata" in err.text and not r.fits


def test_draft_dspark_reads_the_markov_head_and_dflash_on_it_builds_it_too(files):
    """common_speculative_types_from_gguf picks draft-dspark from markov_w1.weight (recorded 'auto' runs); the graph
    builds the Markov head from the file's tensors whatever the type (recorded: the same buffers)."""
    a, b = (next(r for r in OK if r["draft"] == "dspark-a" and r["spec_type"] == t and r["draft_n_max"] == 3
                 and r["backend_sampling"])
            for t in ("draft-dspark", "draft-dflash"))
    assert a["draft_compute_process"] == b["draft_compute_process"] and a["target_output"] == b["target_output"]
    assert any("auto-detected speculative type 'draft-dspark'" in s for r in OK for s in r["said"])


def test_pasted_draft_dflash_is_modelled():
    p, r = read_command("llama-server -m x.gguf --spec-type draft-dflash -md draft.gguf --spec-draft-n-max 7")
    assert r.options["spec_types"] == ("draft-dflash",) and r.options["model_draft"] == "draft.gguf"
    assert r.options["draft_max"] == 7
    assert any(w.code == "command.speed_not_estimated" and "draft-dflash" in w.text for w in r.warnings)
    assert not [w for w in r.warnings if w.code == "command.not_modelled"]
    p, r = read_command("llama-server -m x.gguf --spec-type draft-dspark -md d.gguf")
    assert r.options["spec_types"] == ("draft-dspark",)


def test_without_md_there_is_no_draft_context(files):
    src = open_model(str(files / "qwen3-t.gguf"))
    r = check_llamacpp(src.spec, None, LlamaOptions(n_ctx=4096, spec_types=("draft-dflash",)), src.llama_tensors(),
                       solve=False)
    assert any(w.code == "llamacpp.spec.no_draft" for w in r.warnings) and not r.extras


def test_a_non_dflash_draft_is_refused(files):
    src = open_model(str(files / "qwen3-t.gguf"))
    r = check_llamacpp(src.spec, None, LlamaOptions(n_ctx=4096, spec_types=("draft-dflash",),
                                                    model_draft=str(files / "qwen3-t.gguf")),
                       src.llama_tensors(), solve=False)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.not_dflash"]
    assert "DFlash model has no target_layer_ids" in err.text


def test_ngld_places_the_drafter_on_a_gpu(files):
    from vramcalc.gpus import find_gpu
    run = OK[0]
    src = open_model(str(files / f"{run['target']}.gguf"))
    r = check_llamacpp(src.spec, find_gpu("rtx-4090"), _opts(files, run, n_gpu_layers=999), src.llama_tensors(),
                       solve=False)
    (e,) = [x for x in r.extras if x.kind == "draft"]
    assert e.detail["gpu_layers"] == 2 and e.gpu_bytes[0] > e.detail["kv"]
    r0 = check_llamacpp(src.spec, find_gpu("rtx-4090"), _opts(files, run, n_gpu_layers=999, n_gpu_layers_draft=0),
                        src.llama_tensors(), solve=False)
    (e0,) = [x for x in r0.extras if x.kind == "draft"]
    # -ngld 0: the weights and KV in host memory; the GPU holds the compute buffer (op offload), estimated
    assert e0.detail["gpu_layers"] == 0 and 0 < e0.gpu_bytes[0] <= e0.detail["compute"]
    assert e0.uncertainty_gpu_bytes[0] > 0


def test_the_kept_layer_inputs_outside_the_replay_are_added_whole(files):
    """Where the phase formula sizes the target's compute (layers split between a GPU and the CPU), each kept layer
    input (n_embd x n_ubatch F32) is added on its layer's device: at least what the recorded replay grew by."""
    from vramcalc.gpus import find_gpu
    run = OK[0]
    src = open_model(str(files / f"{run['target']}.gguf"))
    base = dict(n_ctx=4096, n_parallel=4, kv_unified=True, n_gpu_layers=3)
    r0 = check_llamacpp(src.spec, find_gpu("rtx-4090"), LlamaOptions(**base), src.llama_tensors(), solve=False)
    r1 = check_llamacpp(src.spec, find_gpu("rtx-4090"), _opts(files, run, n_gpu_layers=3), src.llama_tensors(),
                        solve=False)
    grew = sum(d.compute_buffer_bytes for d in r1.devices) - sum(d.compute_buffer_bytes for d in r0.devices)
    n_layers = 3  # dflash-a's target_layers 1, 3, 5
    assert grew == n_layers * 4 * 512 * src.spec.hidden_size
    recorded_growth = run["target_compute"] - round(_printed(run, "target", "compute") * MIB)
    assert grew >= recorded_growth > 0


def test_cli_prints_the_dflash_drafter(files, capsys):
    from vramcalc.cli import main
    assert main(["check", str(files / "qwen3-t.gguf"), "--engine", "llamacpp", "-c", "4096", "-md",
                 str(files / "dspark-a.gguf"), "--gpu", "cpu"]) in (0, 1)
    out = capsys.readouterr().out
    assert "--spec-type draft-dspark" in out and "draft " in out


@pytest.mark.parametrize("run", OK, ids=lambda r: f"{r['draft']}-np{r['n_parallel']}-n{r['draft_n_max']}"
                         f"-bs{r['backend_sampling']}")
def test_a_drafting_step_grows_nothing_and_drafts_the_clamped_block(run, files):
    """The recorded drafting step on every slot (each slot's block in one decode, the DSpark Markov head with it):
    the draft's compute and output buffers stay as counted, and slot 0 drafts min(n_max, the trained block's
    drafts) tokens (its top-k candidates never fall under p_min 0)."""
    _, r = _check(files, run)
    (e,) = [x for x in r.extras if x.kind == "draft"]
    assert run["draft_compute"] == run["draft_compute_process"] == e.detail["compute"]
    assert run["draft_output"] == run["draft_output_process"] <= e.detail["output"]
    assert run["drafted"] == e.detail["n_draft"]


def test_a_target_whose_graph_keeps_no_layer_inputs_is_refused(files, tmp_path):
    """gemma3.cpp sets no res->t_layer_inp: with the DFlash layer-input extraction on, llm_graph_result::set_outputs
    asserts (data/llamacpp_backends.json layer_inp_gguf_archs)."""
    path = lm.write_gguf("gemma3", tmp_path / "gemma3.gguf")
    src = open_model(str(path))
    r = check_llamacpp(src.spec, None, LlamaOptions(n_ctx=4096, spec_types=("draft-dflash",),
                                                    model_draft=str(files / "dflash-a.gguf")),
                       src.llama_tensors(), solve=False)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.not_dflash"]
    assert "layer input tensor is null" in err.text and "gemma3" in err.text


def test_without_backend_sampling_the_draft_keeps_its_creation_buffers():
    """--no-spec-draft-backend-sampling: no sampler on the draft context; its re-reserve (llama_set_causal_attn
    false) gives back the compute buffer printed at creation, and its output rows hold logits and nextn floats alone
    (recorded)."""
    off = [r for r in OK if not r["backend_sampling"]]
    assert off and all(_printed(r, "process", "compute") == _printed(r, "draft", "compute") for r in off)
    assert all(mib(r["draft_compute_process"]) == _printed(r, "draft", "compute") for r in off)
    p, r = read_command("llama-server -m x.gguf --spec-type draft-dflash -md d.gguf --no-spec-draft-backend-sampling")
    assert r.options["draft_backend_sampling"] is False
