"""The new real llama.cpp GPU logs of tests/data/llamacpp_dev_more.json (public ggml-org/llama.cpp threads,
held out in tests/data/llamacpp_dev_split.json): partial offload of MoE and hybrid models on consumer GPUs.
The Done-when tolerances of issue 25: KV exact, model buffers within 0.05 MiB, compute within 5%; the
buffers that still miss are strict xfails with the reason."""

from __future__ import annotations

import json
import re

import pytest

from conftest import DATA
from vramcalc.ggml import tensor_bytes
from vramcalc.gguf_mix import plan_gguf
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.engine import LlamaOptions, check_llamacpp
from vramcalc.sources.catalog import load

MIB = 2**20
# m01's log prints b5466: below b6451, published by 2025-09-13 (xorbitsai/xllamacpp#81), so before PR #18148
# (merged 2025-12). Its place against the other PRs is not known; they do not touch this log (no SWA or MLA
# layers, mmap'ed CPU weights), so a date on the same side of #18148 stands for it.
BUILD_M01 = "2025-06-01"
CASES = {c["id"]: c for c in json.loads((DATA / "llamacpp_dev_more.json").read_text())["cases"]}


def _run(cid: str):
    case = CASES[cid]
    spec = load(case["catalog_model"])
    tensors = plan_gguf(spec, case["ftype"])
    opts = LlamaOptions(ftype=case["ftype"], n_outputs_max=case["options"].get("n_batch", 2048),  # builds before #23861
                        **case["options"])
    return case, tensors, check_llamacpp(spec, [find_gpu(g) for g in case["gpus"]], opts, tensors, solve=False)


def test_every_new_log_is_held_out_or_moved_with_its_reason():
    split = json.loads((DATA / "llamacpp_dev_split.json").read_text())
    moved = split.get("calibration_moved", {})
    assert set(CASES) <= set(split["held_out"]) | set(moved)
    assert not set(moved) & set(split["held_out"]) and all(len(why) > 40 for why in moved.values())


def test_m01_file_and_its_blocks():
    """Qwen3-30B-A3B Q4_K_M, b5466, -ngl 30 of 48 blocks: the predicted file is the logged one to the MiB,
    and blocks 18-47 of it are the logged CUDA0 buffer, the rest (token_embd, blocks 0-17, output) the
    CPU_Mapped one: in that build -ngl counts repeating blocks only."""
    case, tensors, r = _run("m01")
    logged = case["measured"]["model_buffers_mib"]
    assert r.model_size_bytes / MIB == pytest.approx(case["measured"]["model_size_mib"], abs=0.005)
    gpu = sum(tensor_bytes(ty, t.ne) for t, ty in tensors
              if (m := re.match(r"blk\.(\d+)\.", t.name)) and int(m.group(1)) >= 48 - 30)
    assert gpu / MIB == pytest.approx(logged["CUDA0"], abs=0.005)
    assert (r.model_size_bytes - gpu) / MIB == pytest.approx(logged["CPU_Mapped"], abs=0.005)


def test_m01_model_buffers_as_logged():
    """Under its build (b5466, before PR #18148) -ngl 30 puts the last 30 blocks on the GPU and the output layer on
    the CPU ('offloaded 30/49 layers'); the modelled build would count the output layer in the 30."""
    case, tensors, _ = _run("m01")
    spec = load(case["catalog_model"])
    opts = LlamaOptions(ftype=case["ftype"], build=BUILD_M01, **case["options"])
    r = check_llamacpp(spec, [find_gpu(g) for g in case["gpus"]], opts, tensors, solve=False)
    logged = case["measured"]["model_buffers_mib"]
    assert r.devices[0].model_buffer_bytes / MIB == pytest.approx(logged["CUDA0"], abs=0.05)
    assert r.devices[-1].model_buffer_bytes / MIB == pytest.approx(logged["CPU_Mapped"], abs=0.05)


def test_m02_kv_and_recurrent_state_exact():
    """Qwen3.5-35B-A3B, b8354, 4 slots, 4096 cells: the KV (10 attention layers) and the recurrent state
    split by layer between the CPU and the GPU, to the printed 0.01 MiB."""
    case, _, r = _run("m02")
    kv = case["measured"]["kv_caches"][0]
    single = next(c for c in r.caches if c.name == "single")
    assert (single.cells, single.k_bytes / MIB, single.v_bytes / MIB) == (kv["cells"], kv["k_mib"], kv["v_mib"])
    rs = case["measured"]["recurrent_buffers_mib"]
    assert r.devices[0].recurrent_buffer_bytes / MIB == pytest.approx(rs["CUDA0"], abs=0.005)
    assert r.devices[-1].recurrent_buffer_bytes / MIB == pytest.approx(rs["CPU"], abs=0.005)


@pytest.mark.xfail(strict=True, reason="CUDA0: 497 MiB predicted is the output phase (512 logits rows x 248,320 "
                   "f32); the log's 553.01 is 56 MiB more, the size of one layer phase. With blocks 0-20 on the CPU, op "
                   "offload runs their ops on CUDA0 with weight and recurrent-state copies per split (ggml-backend.cpp "
                   "pass 5); where those leave live tensors under the logits needs the scheduler's split graph replayed "
                   "through ggml-alloc, which is not built (the phase formula only takes the larger phase)")
def test_m02_gpu_compute_within_5_percent():
    case, _, r = _run("m02")
    assert r.devices[0].compute_buffer_bytes / MIB == pytest.approx(case["measured"]["compute_buffers_mib"]["CUDA0"],
                                                                    rel=0.05)


def test_m02_host_compute_within_10_percent():
    """CUDA_Host 28.39 MiB logged under b8354: the F32 KQ mask (4096 x 512), the F32 embeddings input that PR #18898
    builds into every graph (2048 x 512), and the largest copy a CPU block's cache write takes there: the Gated DeltaNet
    conv window's write-back, a strided view of the F32 conv input (3 + 128 columns x 8192 channels x 4 sequences),
    copied with its strides (ggml-backend.cpp pass 5, ggml_dup_tensor_layout), so 16.37 MiB. The token rows (4 MiB),
    freed at the first GPU split as the last allocation, leave that space to it. Rule from the source at the modelled
    build, derived while this log was in view: it is a calibration case (tests/data/llamacpp_dev_split.json)."""
    case, tensors, _ = _run("m02")
    spec = load(case["catalog_model"])
    opts = LlamaOptions(ftype=case["ftype"], build="8354", **case["options"])
    r = check_llamacpp(spec, [find_gpu(g) for g in case["gpus"]], opts, tensors, solve=False)
    assert r.host_compute_bytes / MIB == pytest.approx(case["measured"]["host_compute_buffers_mib"]["CUDA_Host"],
                                                       rel=0.10)
    assert r.host_compute_bytes / MIB == pytest.approx(case["measured"]["host_compute_buffers_mib"]["CUDA_Host"],
                                                       abs=0.05)  # the ids the formula leaves out are a few KiB


def _spec(case: dict):
    """The catalog model, with the fields the log shows the file differs in (spec_overrides)."""
    return load(case["catalog_model"]).model_copy(update=case.get("spec_overrides", {}))


def _tensors(case: dict):
    """The case's file: the catalog model in its file type, with the retyping its quantizer's build made
    (tensor_retype: regex -> ggml type, for the tensors the log's type counts show differ)."""
    retype = [(re.compile(p), ty) for p, ty in case.get("tensor_retype", {}).items()]
    return [(t, next((ty for rx, ty in retype if rx.search(t.name)), ggml))
            for t, ggml in plan_gguf(_spec(case), case["ftype"])]


def _replay_no_mmap(cid: str, build: str | None = None):
    """A --no-mmap log under its own build (the PRs it cannot be placed against, none of which moves a model
    buffer here, as the modelled build's; named in r.build), or under `build`."""
    case = CASES[cid]
    tensors = _tensors(case)
    opts = LlamaOptions(ftype=case["ftype"], n_outputs_max=case["options"].get("n_batch", 2048),
                        build=build or case.get("modelled_as") or case["build"].split()[0],
                        build_unplaced_as_modelled=build is None, **case["options"])
    r = check_llamacpp(_spec(case), [find_gpu(g) for g in case["gpus"]], opts, tensors, solve=False)
    return case, tensors, r


def _cuda_buffers_as_logged(case: dict, r) -> None:
    """CUDA0, CUDA_Host (the pinned host buffer) and the plain CPU buffer each within 0.05 MiB of the log."""
    logged = case["measured"]["model_buffers_mib"]
    gpu, host = r.devices[0], r.devices[-1]
    assert gpu.model_buffer_bytes / MIB == pytest.approx(logged["CUDA0"], abs=0.05)
    assert host.pinned_model_buffer_bytes / MIB == pytest.approx(logged["CUDA_Host"], abs=0.05)
    assert (host.model_buffer_bytes - host.pinned_model_buffer_bytes) / MIB == pytest.approx(logged["CPU"], abs=0.05)


def test_m03_no_mmap_model_buffers_as_logged():
    """Qwen3-235B-A22B Q8_0, b5192, --no-mmap, -ngl 99, -ot blk.13-93 ffn.*=CPU: CUDA0 holds all but the ffn
    tensors of blocks 13-93 (their norms too: the GGUF name is ffn_norm) and token_embd; token_embd's GET_ROWS on
    q8_0 runs on CUDA, so it takes CUDA_Host (630.59 MiB); the overridden tensors take the CPU buffer type itself
    (a build before PR #14990), a plain CPU buffer (198451.27 MiB). All three within 0.05 MiB."""
    case, _, r = _replay_no_mmap("m03")
    _cuda_buffers_as_logged(case, r)
    assert r.devices[-1].repack_buffer_bytes == 0


def test_m03_from_pr_14990_the_overridden_weights_are_pinned_too():
    """The same command under a build after PR #14990 (src/llama-model-loader.cpp create_tensor at 4df29be: an
    override to the CPU buffer type picks from the CPU list, CUDA_Host first): the host total is unchanged and all
    of it is pinned. No log of such a build with --no-mmap and -ot is recorded; this is the rule's other side."""
    _, _, old = _replay_no_mmap("m03")
    _, _, new = _replay_no_mmap("m03", build="latest")
    assert new.devices[-1].model_buffer_bytes == old.devices[-1].model_buffer_bytes
    assert new.devices[-1].pinned_model_buffer_bytes == new.devices[-1].model_buffer_bytes
    assert new.devices[0].model_buffer_bytes == old.devices[0].model_buffer_bytes


def test_m04_file_as_logged():
    """Ollama's phi-4 Q4_K_M (attn_qkv Q5_K, as its quantizer's build gave it): the log's type counts and its
    8.43 GiB, and the KV cache of 2048 cells x 40 layers, 200 + 200 MiB."""
    case, tensors, r = _replay_no_mmap("m04")
    counts: dict[str, int] = {}
    for _, ty in tensors:
        counts[ty] = counts.get(ty, 0) + 1
    assert counts == {"F32": 81, "Q4_K": 101, "Q5_K": 40, "Q6_K": 21}
    assert round(r.model_size_bytes / 2**30, 2) == 8.43
    kv = case["measured"]["kv_caches"][0]
    single = next(c for c in r.caches if c.name == "single")
    assert (single.cells, single.k_bytes / MIB, single.v_bytes / MIB) == (kv["cells"], kv["k_mib"], kv["v_mib"])


def test_m04_no_mmap_partial_offload_buffers_as_logged():
    """-ngl 29 under a build before PR #18148: blocks 11-39 on CUDA0 (5731.89 MiB); blocks 0-10, the output layer and
    output_norm in CUDA_Host (2622.81 MiB: CUDA runs their ops); token_embd (q4_K) in the plain CPU buffer (275.62
    MiB): before PR #25962 CUDA reads no k-quant rows (ggml-cuda.cu supports_op GET_ROWS), so its buffer type is the
    next in the list. Each within 0.05 MiB."""
    case, _, r = _replay_no_mmap("m04")
    _cuda_buffers_as_logged(case, r)


def test_m05_rocm_full_offload_no_mmap_buffers_as_logged():
    """Qwen3-Embedding-8B Q8_0 (Qwen3-8B's shape, n_vocab 151665, tied head: the log's 398 tensors), b5618 on an
    RX 7900 XT, --no-mmap, -ngl 999: ROCm0 holds every layer and the tied output's own copy of token_embd
    (7668.64 MiB); token_embd itself, on the host, reads its q8_0 rows on ROCm (the CUDA code built with HIP), so it
    is in ROCm_Host (629.47 MiB) and no CPU buffer is printed. The file's tensor counts and the KV as logged."""
    case, tensors, r = _replay_no_mmap("m05")
    counts: dict[str, int] = {}
    for _, ty in tensors:
        counts[ty] = counts.get(ty, 0) + 1
    assert counts == {"F32": 145, "Q8_0": 253} and round(r.model_size_bytes / 2**30, 2) == 7.49
    logged = case["measured"]["model_buffers_mib"]
    gpu, host = r.devices[0], r.devices[-1]
    assert gpu.model_buffer_bytes / MIB == pytest.approx(logged["ROCm0"], abs=0.05)
    assert host.pinned_model_buffer_bytes / MIB == pytest.approx(logged["ROCm_Host"], abs=0.05)
    assert host.model_buffer_bytes == host.pinned_model_buffer_bytes
    kv = case["measured"]["kv_caches"][0]
    single = next(c for c in r.caches if c.name == "single")
    assert (single.cells, single.k_bytes / MIB, single.v_bytes / MIB) == (kv["cells"], kv["k_mib"], kv["v_mib"])


def test_m03_with_no_host_every_host_weight_is_plain_cpu():
    """m03's logged host weights (CUDA_Host 630.59 MiB + CPU 198451.27 MiB) under --no-host: make_cpu_buft_list
    (src/llama-model.cpp, 4df29be) leaves CUDA_Host out, and the host CPU repacks none of these Q8_0 tensors here,
    so all of them take the plain CPU buffer: the same total, none pinned, the GPU unchanged."""
    case = CASES["m03"]
    logged = case["measured"]["model_buffers_mib"]
    opts = LlamaOptions(ftype=case["ftype"], n_outputs_max=case["options"].get("n_batch", 2048), build="latest",
                        no_host=True, **case["options"])
    r = check_llamacpp(_spec(case), [find_gpu(g) for g in case["gpus"]], opts, _tensors(case), solve=False)
    host = r.devices[-1]
    assert host.pinned_model_buffer_bytes == 0 and host.repack_buffer_bytes == 0
    assert host.model_buffer_bytes / MIB == pytest.approx(logged["CUDA_Host"] + logged["CPU"], abs=0.1)
    assert r.devices[0].model_buffer_bytes / MIB == pytest.approx(logged["CUDA0"], abs=0.05)
