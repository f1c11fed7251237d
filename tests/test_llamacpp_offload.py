"""The scheduler's op offload with weights in host memory, the host's compute buffer, -ot to any device,
--device and the CPU_REPACK rule, against the logged llama.cpp runs of tests/data/llamacpp_offload_logs.json
(https://github.com/ikawrakow/ik_llama.cpp/discussions/357)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramcalc.cli import main
from vramcalc.errors import InputError
from vramcalc.gguf_mix import plan_gguf
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import load

MIB = 2**20
LOGS = {c["id"]: c for c in json.loads((Path(__file__).parent / "data/llamacpp_offload_logs.json").read_text())["cases"]}
SPEC = load("Qwen/Qwen3-235B-A22B")
TENSORS = {ft: plan_gguf(SPEC, ft) for ft in ("Q8_0", "Q6_K")}


def _run(case: dict, **extra: object):
    # under the log's build (5192 / 5269: before PR #18898, so no embeddings input in the host buffer); the PRs it
    # cannot be placed against (#12498 to #12801: CPU_AARCH64 and MLA rules no log here touches) as modelled
    opts = LlamaOptions(ftype=case["ftype"], n_outputs_max=2048, build=case["build"].split()[0],  # before #23861
                        build_unplaced_as_modelled=True, **{**case["options"], **extra})
    return check_llamacpp(SPEC, [find_gpu(g) for g in case["gpus"]], opts, TENSORS[case["ftype"]], solve=False)


@pytest.mark.parametrize("cid", sorted(LOGS))
def test_first_gpu_holds_the_copy(cid):
    case = LOGS[cid]
    r = _run(case)
    logged = list(case["compute_mib"].values())
    cuda0 = r.devices[0].compute_buffer_bytes / MIB
    assert cuda0 > case["expert_tensor_mib"]  # the copy of one expert tensor is in it
    assert abs(cuda0 / logged[0] - 1) < 0.08
    for d, mib in enumerate(logged[1:], start=1):  # the other GPUs get no copy
        assert r.devices[d].compute_buffer_bytes / MIB < case["expert_tensor_mib"]
        assert abs(r.devices[d].compute_buffer_bytes / MIB / mib - 1) < 0.08


@pytest.mark.parametrize("cid", sorted(LOGS))
def test_host_compute(cid):
    case = LOGS[cid]
    logged = sum(case["host_compute_mib"].values())
    assert abs(_run(case).host_compute_bytes / MIB / logged - 1) < 0.10


def test_no_copy_below_the_batch_threshold():
    case = LOGS["c31"]  # CUDA offload_op takes batches from 32 on: -ub 16 keeps the ops on the CPU
    r = _run(case, n_ubatch=16)
    assert r.devices[0].compute_buffer_bytes / MIB < case["expert_tensor_mib"]


@pytest.mark.parametrize("cid", ["c31", "c32"])
def test_override_to_a_gpu(cid):
    """-ot blk.N.ffn=CUDA1 moves those tensors to that GPU: the logged model buffers, within what the
    predicted file (not the 128K variant's own) differs by."""
    case = LOGS[cid]
    r = _run(case)
    for d, mib in enumerate(case["model_mib"].values()):
        assert abs(r.devices[d].model_buffer_bytes / MIB - mib) < 2.0


def test_override_and_devices_refused():
    case = LOGS["c31"]
    with pytest.raises(InputError):
        _run(case, override_tensor=("ffn=CUDA3",))
    with pytest.raises(InputError):
        LlamaOptions(override_tensor=("ffn",))
    with pytest.raises(InputError):
        _run(case, devices=("CUDA2",))
    cpu = _run(case, devices=("none",), override_tensor=())
    assert [d.device for d in cpu.devices] == ["host RAM"]


def test_no_repack_with_a_gpu_host_buffer():
    """make_cpu_buft_list: the GPU's host buffer comes before CPU_REPACK, so with CUDA no CPU layer is
    repacked; CPU only, the x86 AVX2 types are (tests/data/llamacpp_runs.json checks those bytes), ARM's
    set differs and 'none' repacks nothing."""
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    t = plan_gguf(spec, "Q4_0")
    opts = LlamaOptions(ftype="Q4_0", n_ctx=4096, n_gpu_layers=10)
    assert check_llamacpp(spec, find_gpu("rtx-4090"), opts, t, solve=False).devices[-1].repack_buffer_bytes == 0
    cpu = {h: check_llamacpp(spec, None, opts.model_copy(update={"host_cpu": h}), t, solve=False).devices[-1]
           for h in ("x86_avx2", "arm_neon", "none")}
    assert cpu["x86_avx2"].repack_buffer_bytes > 0 and cpu["none"].repack_buffer_bytes == 0
    assert cpu["arm_neon"].repack_buffer_bytes >= cpu["x86_avx2"].repack_buffer_bytes


def test_cpu_moe_is_not_repacked():
    """--cpu-moe names the CPU buffer type itself: the experts stay in the mapped file, never in CPU_REPACK."""
    spec = load("openai/gpt-oss-120b")
    r = check_llamacpp(spec, find_gpu("rtx-4090"), LlamaOptions(ftype="MXFP4_MOE", n_ctx=8192, cpu_moe=True),
                       plan_gguf(spec, "MXFP4_MOE"), solve=False)
    host = r.devices[-1]
    assert host.repack_buffer_bytes == 0 and host.model_buffer_bytes < r.model_size_bytes


def test_cli_n_cpu_moe_puts_the_copy_on_the_first_gpu(capsys):
    code = main(["check", "Qwen/Qwen3-235B-A22B", "--gpu", "2x3090", "--engine", "llamacpp", "--quant", "gguf:Q6_K",
                 "-c", "16384", "-np", "1", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "--n-cpu-moe", "94",
                 "-ngl", "all", "--json"])
    assert code in (0, 1)
    out = json.loads(capsys.readouterr().out)
    devs = out["devices"] if "devices" in out else out["result"]["devices"]
    assert devs[0]["compute_buffer_bytes"] / MIB > LOGS["c31"]["expert_tensor_mib"]
    assert devs[1]["compute_buffer_bytes"] / MIB < LOGS["c31"]["expert_tensor_mib"]


def test_program_logits_rows():
    """The llama-cli log of gpt-oss-20b on Metal (the project's llamacpp_dev set, c02: Metal compute 1672.08 MiB,
    CPU compute 1064.59 MiB, -ub 2048 -b 2048 --ctx-size 0): llama-cli reserves n_batch logits rows; llama-server
    of the modelled build one per slot, less compute."""
    spec = load("openai/gpt-oss-20b")
    t = plan_gguf(spec, "MXFP4_MOE")
    kw = dict(ftype="MXFP4_MOE", n_ctx=131072, kv_unified=False, n_ubatch=2048, n_batch=2048, flash_attn="on")
    cli = check_llamacpp(spec, find_gpu("apple-m4-max"), LlamaOptions(program="llama-cli", **kw), t, solve=False)
    assert cli.n_parallel == 1
    assert abs(cli.devices[0].compute_buffer_bytes / MIB / 1672.08 - 1) < 0.05
    assert abs(cli.host_compute_bytes / MIB / 1064.59 - 1) < 0.05
    server = check_llamacpp(spec, find_gpu("apple-m4-max"), LlamaOptions(program="llama-server", n_parallel=1, **kw),
                            t, solve=False)
    assert server.devices[0].compute_buffer_bytes < cli.devices[0].compute_buffer_bytes


def test_ollama_defaults():
    o = LlamaOptions(program="ollama", n_parallel=2)
    assert (o.n_ctx, o.n_ubatch, o.n_batch, o.outputs_reserved, o.output_embeddings) == (4096, 512, 1024, 1024, True)
    assert LlamaOptions(program="llama-server").n_parallel == 4


def _as_old_gguf(spec):
    """The spec as read from a GGUF converted before PR #12801: no attention.key_length_mla."""
    layers = tuple(la.model_copy(update={"attention": la.attention.model_copy(update={
        "mla": la.attention.mla.model_copy(update={"gguf_mla_keys": False})})})
        if la.attention is not None and la.attention.mla is not None else la for la in spec.layers)
    return spec.model_copy(update={"layers": layers})


def test_mla_layout_from_the_gguf_header():
    """DeepSeek-R1 Q8_0 of ikawrakow/ik_llama.cpp#285 (tests/data/llamacpp_kv_logs.json c35): a file without the
    _mla keys caches full per-head K and V; the layout follows from the header, with no option."""
    case = next(c for c in json.loads((Path(__file__).parent / "data/llamacpp_kv_logs.json").read_text())["cases"]
                if c["id"] == "c35")
    spec = _as_old_gguf(load("deepseek-ai/DeepSeek-R1"))
    o = case["options"]
    r = check_llamacpp(spec, None, LlamaOptions(ftype="Q8_0", n_ctx=o["n_ctx"], n_parallel=o["n_seq_max"],
                                                kv_unified=o["kv_unified"], flash_attn="off"), solve=False)
    logged = sum(c["k_mib"] + c["v_mib"] for c in case["caches"])
    assert sum(c.k_bytes + c.v_bytes for c in r.caches) / MIB == pytest.approx(logged, abs=0.01)
    new = check_llamacpp(load("deepseek-ai/DeepSeek-R1"), None, LlamaOptions(ftype="Q8_0", n_ctx=o["n_ctx"],
                                                                             flash_attn="off"), solve=False)
    assert sum(c.v_bytes for c in new.caches) == 0  # a current file: K only (PR #19067)
    assert LlamaOptions(program="ollama", n_ctx=None).n_ctx == 4096  # Ollama always sets num_ctx


def test_modelled_build_runs_and_a_release_inside_a_prs_window_is_refused_naming_it():
    from vramcalc.errors import NotModelledError
    spec = load("meta-llama/Llama-3.1-8B-Instruct")
    for build in ("4df29be", "latest"):
        assert check_llamacpp(spec, None, LlamaOptions(ftype="Q4_K_M", n_ctx=4096, build=build), solve=False).fits
    # b5192 lacks PR #23861 (b9292 of 2026-05-23 does) but lies inside the window of PR #12632's first release
    with pytest.raises(NotModelledError, match=r"#12632 .*between b4937 and b7217"):
        check_llamacpp(spec, None, LlamaOptions(ftype="Q4_K_M", n_ctx=4096, build="b5192"), solve=False)


def test_weight_copy_above_the_first_splits_inputs():
    """ggml-backend's pass 5 copies the F32 mask and the embeddings into the first GPU split, where the mask is cast
    to F16 and kept to the last layer; the expert weight copy of a later split cannot reuse the freed hole below it
    (data/llamacpp_backends.json split_inputs_source). c29 (every expert on the CPU, one A6000): 1024.00 MiB logged;
    c31/c32 (experts of blocks 5-93 / 14-93 on the CPU): 774 MiB logged, and the rule does not fall below it."""
    r = _run(LOGS["c29"])
    assert r.devices[0].compute_buffer_bytes / MIB == pytest.approx(LOGS["c29"]["compute_mib"]["CUDA0"], abs=0.05)
    for cid in ("c31", "c32"):
        logged = LOGS[cid]["compute_mib"]["CUDA0"]
        cuda0 = _run(LOGS[cid]).devices[0].compute_buffer_bytes / MIB
        assert logged <= cuda0 <= logged * 1.03
    # c30 (-ngl 0): no GPU holds block 0, so the mask is cast on the host and no hole is added
    c30 = LOGS["c30"]
    assert _run(c30).devices[0].compute_buffer_bytes / MIB == pytest.approx(c30["compute_mib"]["CUDA0"], rel=0.02)
