"""--spec-type draft-mtp (vramcalc/llamacpp/engine.py _mtp) against a real llama.cpp 4df29be: the buffers it printed for
the target and the MTP context it makes on the target's own NextN / MTP block (tests/data/llamacpp_mtp_runs.json,
recorded by tools/record_llamacpp_mtp.py on the GGUFs of tests/llamacpp_mtp_models.py, written again here): qwen3next,
qwen35 (Qwen3.5 / 3.6 dense) and qwen35moe (Qwen3.5 / 3.6 MoE) files, f16 and Q4_0, each draft-mtp case with
--spec-draft-backend-sampling (the default: a backend top-k sampler per slot on the MTP context, its graph re-reserved
and its output buffer grown at its first decode) and with --no-spec-draft-backend-sampling."""

from __future__ import annotations

from functools import lru_cache

import pytest

import llamacpp_models as lm
from llamacpp_models import mib
import llamacpp_mtp_models as mm
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.llamacpp.kv import output_buffer_bytes
from vramcalc.pasted_command import read_command
from vramcalc.sources import open_model

RECORDED = lm.recorded("llamacpp_mtp_runs")
RUNS = RECORDED["runs"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    t = tmp_path_factory.mktemp("mtp")
    for name in {r["model"] for r in RUNS}:
        (mm.write if name in mm.MODELS else lm.write_gguf)(name, t / f"{name}.gguf")
    return t


@lru_cache(maxsize=None)
def _src(path: str):
    return open_model(path)


def _check(files, run: dict):
    src = _src(str(files / f"{run['model']}.gguf"))
    opts = LlamaOptions(n_ctx=run["n_ctx"], n_parallel=run["n_parallel"], kv_unified=True, n_batch=run["n_batch"],
                        n_ubatch=run["n_ubatch"], draft_max=run["draft_n_max"], flash_attn=run["flash_attn"],
                        type_k=run["type_k"].upper(), type_v=run["type_v"].upper(),
                        type_k_draft=run["type_k_draft"].upper(), type_v_draft=run["type_v_draft"].upper(),
                        spec_types=("draft-mtp",) if run["draft_mtp"] else (),
                        draft_backend_sampling=bool(run["backend_sampling"]))
    return src.spec, check_llamacpp(src.spec, None, opts, src.llama_tensors(), solve=False)


def _printed(run: dict, context: str, kind: str, buffer: str | None = None) -> float:
    return round(sum(b["mib"] for b in run["buffers"] if b["context"] == context and b["kind"] == kind
                     and (buffer is None or b["buffer"] == buffer)), 2)


def test_the_recording_is_the_modelled_build():
    assert RECORDED["llama_cpp_commit"].startswith("4df29be") and RECORDED["produced_by"] == "tools/record_llamacpp_mtp.py"
    assert len(RUNS) == 96 and {r["model"].split("-")[0] for r in RUNS} == {"qwen3next", "qwen35", "qwen35moe"}
    assert sum(r["draft_mtp"] and not r["backend_sampling"] for r in RUNS) == 42
    # every run but the MTP-only sidecar loaded as the model (test_an_mtp_only_gguf_is_not_modelled) and the one that
    # aborts at -ub 4 (test_a_ubatch_within_the_rollback_tail_aborts)
    assert all(r["exit"] == 0 for r in RUNS if r["model"] != "qwen35-mtp-only" and r["n_ubatch"] > 4)


def test_a_ubatch_within_the_rollback_tail_aborts(files):
    """qwen35 with draft-mtp rolls its recurrent state back (n_rs_seq = --spec-draft-n-max 3): split_equal keeps each
    sequence's last n_rs_seq + 1 tokens in one ubatch and asserts -ub holds more; at -ub 4 the target's first decode
    (common_init_from_params' warmup) aborts (recorded); vramcalc refuses it in llama.cpp's words."""
    (run,) = [r for r in RUNS if r["n_ubatch"] == 4]
    assert run["exit"] == -6 and run["asserted"] == ["GGML_ASSERT(n_ubatch > n_keep_tail) failed"]
    _, r = _check(files, run)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.rs_ubatch"]
    assert run["asserted"][0] in err.text and not r.fits
    ok = run | {"n_ubatch": 5}  # n_rs_seq + 2: the split holds the tail
    assert not [m for m in _check(files, ok)[1].errors if m.code == "llamacpp.spec.rs_ubatch"]
    # qwen3next rolls nothing back: no n_rs_seq, no assertion
    assert not [m for m in _check(files, run | {"model": "qwen3next-mtp"})[1].errors if m.code == "llamacpp.spec.rs_ubatch"]


@pytest.mark.parametrize("run", [r for r in RUNS if r.get("n_layer_nextn") and "fail" not in r
                                 and not r.get("asserted")],
                         ids=lambda r: f"{r['model']}-c{r['n_ctx']}-np{r['n_parallel']}-mtp{int(r['draft_mtp'])}"
                         f"-bs{r['backend_sampling']}")
def test_target_and_mtp_context_buffers_as_llama_cpp_prints_them(run, files):
    """The target's weights (the MTP block's tensors loaded only with draft-mtp), KV (the trunk's attention layers),
    recurrent state, compute and output buffers, and the MTP context's KV (the MTP block alone, -ctkd/-ctvd types),
    compute (graph_mtp replayed) and output buffers, to the 0.01 MiB llama.cpp prints."""
    spec, r = _check(files, run)
    assert not r.errors
    host = next(d for d in r.devices if d.device == "host RAM")
    assert mib(host.model_buffer_bytes) == _printed(run, "target", "model", "CPU_Mapped")
    assert mib(host.repack_buffer_bytes) == _printed(run, "target", "model", "CPU_REPACK")
    assert mib(host.kv_buffer_bytes) == _printed(run, "target", "KV")
    assert mib(host.recurrent_buffer_bytes) == _printed(run, "target", "RS")
    assert mib(host.compute_buffer_bytes) == _printed(run, "target", "compute")
    # at start the output buffer holds one row per slot (output_reserve(n_seq_max)); it grows later (LlamaOptions
    # output_rows, and the nextn rows draft-mtp adds)
    assert mib(output_buffer_bytes(spec, run["n_parallel"])) == _printed(run, "target", "output")
    mtp = [e for e in r.extras if e.kind == "mtp"]
    if not run["draft_mtp"]:
        assert not mtp
        return
    (e,) = mtp
    # once draft-mtp sets embeddings_nextn (unmasked) on the target, its output buffer holds n_embd floats for every
    # token of a batch: the recorded decode found n_batch rows (llama_get_embeddings_nextn_ith's range)
    assert run["target_nextn_rows"] == run["n_batch"] and run["decode"] == 0
    rows = LlamaOptions(n_parallel=run["n_parallel"], n_batch=run["n_batch"], draft_max=run["draft_n_max"],
                        spec_types=("draft-mtp",)).output_rows
    assert host.output_buffer_bytes == output_buffer_bytes(spec, rows) + spec.hidden_size * run["target_nextn_rows"] * 4
    assert run["speculates"] == 1 and run["mtp_n_ctx"] == e.detail["n_ctx"] == r.n_ctx
    # the target's buffers after the prompt's decode (one output per slot): compute as reserved, output with the rows
    assert host.compute_buffer_bytes == run["target_compute"]
    assert output_buffer_bytes(spec, run["n_parallel"]) + spec.hidden_size * run["n_batch"] * 4 == run["target_output"]
    assert mib(int(e.detail["kv"])) == _printed(run, "mtp", "KV")
    # the MTP context as created (no samplers yet), to the byte
    assert run["mtp_outputs_max"] == run["n_parallel"] and run["mtp_outputs_max_per_seq"] == 1
    assert e.detail["compute_start"] == run["mtp_compute_start"]
    assert mib(int(e.detail["compute_start"])) == _printed(run, "mtp", "compute")
    assert e.detail["output_start"] == run["mtp_output_start"]
    assert mib(int(e.detail["output_start"])) == _printed(run, "mtp", "output")
    # common_speculative_impl_draft_mtp's samplers (one per slot, with backend sampling), then the MTP context's first
    # decode (common_speculative_process): the re-reserved graph (printed) and the output buffer with the sampling
    # rows; a drafting step on every slot grows neither
    bs = bool(run["backend_sampling"])
    assert run["mtp_samplers"] == (run["n_parallel"] if bs else 0) and bool(e.detail["backend_sampling"]) is bs
    assert run["process"] == 1 and run["drafted"] >= 1
    assert e.detail["compute"] == run["mtp_compute_process"] == run["mtp_compute"]
    assert _printed(run, "mtp_process", "compute") == (mib(int(e.detail["compute"])) if bs else 0)
    assert e.detail["output"] == run["mtp_output_process"] == run["mtp_output"]
    # the MTP context counts in the draft column of the host (CPU only)
    assert host.draft_bytes == e.host_bytes == e.detail["kv"] + e.detail["compute"] + e.detail["output"]


def test_backend_sampling_grows_the_mtp_context():
    """With --spec-draft-backend-sampling (the default) the MTP context's output buffer holds 3 n_vocab + 1 more
    values per slot (recorded: every pair of runs differs), and the re-reserve's compute buffer is never smaller: larger
    where the graph's activations are small (the runs with -ub 8 and 16: build_sampling's padded logits and top-k
    rows raise the peak; the per-run test checks the replay's figure)."""
    pairs = grown = 0
    for on in (r for r in RUNS if r["draft_mtp"] and r["backend_sampling"] and r.get("n_layer_nextn")
               and "fail" not in r and not r.get("asserted")):
        off = next(r for r in RUNS if r["backend_sampling"] == 0 and all(
            r[k] == on[k] for k in ("model", "n_ctx", "n_parallel", "n_batch", "n_ubatch", "draft_n_max", "flash_attn",
                                    "type_k_draft", "type_v_draft")))
        assert on["mtp_output"] > off["mtp_output"] and on["mtp_compute"] >= off["mtp_compute"]
        assert off["mtp_compute"] == off["mtp_compute_start"] and off["mtp_output_start"] == on["mtp_output_start"]
        pairs += 1
        grown += on["mtp_compute"] > off["mtp_compute"]
        assert on["mtp_compute"] == off["mtp_compute"] or on["n_ubatch"] <= 16
    assert pairs == 42 and grown == 11  # all the -ub 8 / 16 runs but qwen35moe-mtp-q4's at -ub 16 (its MoE larger)


@pytest.mark.parametrize("model", sorted(mm.MODELS.keys() & {r["model"] for r in RUNS if r.get("n_layer_nextn")}))
def test_without_the_mtp_block_the_weights_are_the_trunks(model, files):
    """Off, the MTP block's tensors are not loaded (TENSOR_SKIP): the recorded model buffers shrink by them, and
    vramcalc's by the same bytes (the per-run test checks each side)."""
    off, on = (next(r for r in RUNS if r["model"] == model and r["draft_mtp"] is x) for x in (False, True))
    assert _printed(off, "target", "model") < _printed(on, "target", "model")
    assert off["n_layer"] == on["n_layer"] == mm.MODELS[model][0].n_layer and on["n_layer_nextn"] == 1
    assert _src(str(files / f"{model}.gguf")).spec.num_layers == on["n_layer"]


def test_qwen35_recurrent_state_keeps_a_snapshot_per_drafted_token(files):
    """qwen35 / qwen35moe support a recurrent rollback (llm_arch_supports_rs_rollback): with draft-mtp
    common_params_speculative::need_n_rs_seq sets n_rs_seq = --spec-draft-n-max, and the RS buffer holds
    1 + n_rs_seq rows per sequence (recorded); qwen3next's does not."""
    for model, grows in (("qwen35-mtp", True), ("qwen35moe-mtp", True), ("qwen3next-mtp", False)):
        off, on = (next(r for r in RUNS if r["model"] == model and r["draft_mtp"] is x and r["n_ctx"] == 4096
                        and r["n_parallel"] == 4) for x in (False, True))
        ratio = _printed(on, "target", "RS") / _printed(off, "target", "RS")
        assert ratio == pytest.approx(1 + on["draft_n_max"] if grows else 1, rel=0.01)
        _, r = _check(files, on)
        host = next(d for d in r.devices if d.device == "host RAM")
        assert mib(host.recurrent_buffer_bytes) == _printed(on, "target", "RS")


def test_a_quantized_draft_v_cache_without_flash_attention_is_refused(files):
    """-ctvd q8_0 with -fa off: llama_init_from_model refuses the MTP context (recorded), so llama-server stops."""
    (run,) = [r for r in RUNS if r["draft_mtp"] and r["type_v_draft"] == "q8_0" and r["flash_attn"] == "off"]
    assert run["fail"] == "mtp_context" and run["exit"] == 0
    assert "llama_init_from_model: quantized V cache requires flash_attn to be enabled" in run["said"]
    _, r = _check(files, run)
    (err,) = [m for m in r.errors if m.code == "llamacpp.kv.quant_v_needs_fa"]
    assert all(s in err.text for s in run["said"][1:]) and not r.fits
    assert not [e for e in r.extras if e.kind == "mtp"]


@pytest.mark.parametrize("run", [r for r in RUNS if r.get("n_layer_nextn") == 0], ids=lambda r: r["model"])
def test_a_model_without_mtp_layers_is_refused_in_llama_cpps_words(run, files):
    assert run["fail"] == "mtp_context"
    assert "llama_init_from_model: context type MTP requested but model doesn't contain MTP layers" in run["said"]
    _, r = _check(files, run)
    (err,) = [m for m in r.errors if m.code == "llamacpp.spec.no_mtp"]
    assert all(s in err.text for s in run["said"][1:]) and not r.fits
    assert not [e for e in r.extras if e.kind == "mtp"]


def test_an_mtp_only_gguf_is_not_modelled(files):
    """An MTP-only sidecar (qwen35.cpp load_arch_tensors mtp_only: no blk.0.attn_norm) as -m: the recorded run loads
    it and dies with SIGSEGV reserving the target's graph; vramcalc says it is not modelled."""
    from vramcalc.errors import NotModelledError
    (run,) = [r for r in RUNS if r["model"] == "qwen35-mtp-only"]
    assert run["exit"] == -11 and run["last_said"][-1].endswith("sched_reserve: reserving ...")
    src = _src(str(files / "qwen35-mtp-only.gguf"))
    for types in ((), ("draft-mtp",)):
        with pytest.raises(NotModelledError, match="MTP-only GGUF"):
            check_llamacpp(src.spec, None, LlamaOptions(n_ctx=4096, spec_types=types), src.llama_tensors(), solve=False)


def test_other_architectures_mtp_blocks_are_not_modelled(files):
    """A file of another architecture carrying nextn tensors: its MTP context is not modelled, and says so."""
    from vramcalc.errors import NotModelledError
    src = _src(str(files / "qwen35-mtp.gguf"))
    other = src.spec.model_copy(update={"architecture": "gguf:glm4moe", "mtp_layers": 0})
    with pytest.raises(NotModelledError, match="modelled for qwen3next, qwen35, qwen35moe GGUFs only"):
        check_llamacpp(other, None, LlamaOptions(n_ctx=4096, spec_types=("draft-mtp",)), src.llama_tensors(),
                       solve=False)


@pytest.mark.parametrize("model", ["qwen3next-mtp", "qwen35-mtp", "qwen35moe-mtp"])
def test_mtp_block_is_a_layer_for_placement_and_offloaded_first(model, files):
    """-ngl counts n_layer_all (the trunk and the MTP block) and the output layer first (PR #18148): -ngl 2 offloads
    the output layer and the MTP block, whose KV goes with it; -ngl all is n_layer_all + 1."""
    from vramcalc.gpus import find_gpu as get_gpu
    src = _src(str(files / f"{model}.gguf"))
    assert src.spec.num_layers == 4 and src.spec.mtp_layers == 1
    opts = LlamaOptions(n_ctx=4096, n_gpu_layers=2, spec_types=("draft-mtp",))
    r = check_llamacpp(src.spec, get_gpu("rtx-4090"), opts, src.llama_tensors(), solve=False)
    (e,) = [x for x in r.extras if x.kind == "mtp"]
    assert r.gpu_layers == 1 and e.gpu_bytes[0] >= e.detail["kv"] and r.devices[0].kv_buffer_bytes == 0
    full = check_llamacpp(src.spec, get_gpu("rtx-4090"), opts.model_copy(update={"n_gpu_layers": 999}),
                          src.llama_tensors(), solve=False)
    assert full.gpu_layers == 5 and "-ngl all" in full.command and "--spec-type draft-mtp" in full.command


def test_pasted_draft_mtp_is_modelled():
    p, r = read_command("llama-server -m x.gguf --spec-type draft-mtp --spec-draft-n-max 5 -ctkd q8_0")
    assert r.options["spec_types"] == ("draft-mtp",) and r.options["draft_max"] == 5
    assert any(w.code == "command.speed_not_estimated" and "draft-mtp" in w.text for w in r.warnings)


def test_draft_mtp_with_a_draft_model_or_tensor_split_is_not_modelled(files):
    from vramcalc.errors import NotModelledError
    src = _src(str(files / "qwen3next-mtp.gguf"))
    with pytest.raises(NotModelledError, match="on the draft model"):
        check_llamacpp(src.spec, None, LlamaOptions(n_ctx=4096, spec_types=("draft-mtp",),
                                                    model_draft=str(files / "qwen3next-mtp.gguf")),
                       src.llama_tensors(), solve=False)


@pytest.mark.parametrize("model", ["qwen3next-mtp", "qwen35-mtp"])
def test_cli_prints_the_mtp_context(model, files, capsys):
    from vramcalc.cli import main
    assert main(["check", str(files / f"{model}.gguf"), "--engine", "llamacpp", "-c", "4096",
                 "--spec-type", "draft-mtp", "--gpu", "cpu"]) in (0, 1)
    out = capsys.readouterr().out
    assert "--spec-type draft-mtp: the MTP context on the model's 1 MTP block(s)" in out


def test_qwen35_with_more_than_one_mtp_block_is_not_modelled(files):
    """qwen35.cpp / qwen35moe.cpp graph_mtp assert n_layer_nextn == 1 (an abort in llama.cpp): not modelled."""
    from vramcalc.errors import NotModelledError
    src = _src(str(files / "qwen35moe-mtp.gguf"))
    two = src.spec.model_copy(update={"mtp_layers": 2})
    with pytest.raises(NotModelledError, match="supports a single MTP block"):
        check_llamacpp(two, None, LlamaOptions(n_ctx=4096, spec_types=("draft-mtp",)), src.llama_tensors(),
                       solve=False)
