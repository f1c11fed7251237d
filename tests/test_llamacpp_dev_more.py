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


def test_every_new_log_is_held_out():
    held = set(json.loads((DATA / "llamacpp_dev_split.json").read_text())["held_out"])
    assert set(CASES) <= held


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
    build; this held-out log only checks it."""
    case, tensors, _ = _run("m02")
    spec = load(case["catalog_model"])
    opts = LlamaOptions(ftype=case["ftype"], build="8354", **case["options"])
    r = check_llamacpp(spec, [find_gpu(g) for g in case["gpus"]], opts, tensors, solve=False)
    window = 4 + 2 * 4 + (8192 - 1) * (3 + 128) * 4 + 3 * 8192 * (3 + 128) * 4
    assert r.host_compute_bytes == 4096 * 512 * 4 + 2048 * 512 * 4 + window
    assert r.host_compute_bytes / MIB == pytest.approx(case["measured"]["host_compute_buffers_mib"]["CUDA_Host"],
                                                       rel=0.10)
    assert r.host_compute_bytes / MIB == pytest.approx(case["measured"]["host_compute_buffers_mib"]["CUDA_Host"],
                                                       abs=0.05)  # the ids the formula leaves out are a few KiB
