"""Record what a real llama.cpp (CPU backend) allocates for --spec-type draft-mtp, into tests/data/llamacpp_mtp_runs.json.

Builds tools/mtp_probe.cpp against a llama.cpp tree (the tree llama-cpp-python 0.3.35's sdist vendors,
ggml-org/llama.cpp@4df29be4f, the modelled build): the common/ sources llama-server's start-up path needs, compiled
here, and the tree's libllama / libggml built CPU only (as for tools/record_spec_limits.py):

    python3 tools/record_llamacpp_mtp.py --src vendor/llama.cpp --build /tmp/lcppbuild --commit 4df29be

Each case is a fresh process on a GGUF of tests/llamacpp_mtp_models.py (a qwen3next, qwen35 or qwen35moe trunk with
one NextN / MTP block; files without one, and an MTP-only sidecar, once each):
the target's model, KV, recurrent, output and compute buffers as common_init_from_params makes them (load_mtp on with
draft-mtp), then, with draft-mtp, the MTP context's buffers as common_speculative_init_from_params makes it on the
target model and common_speculative_init attaches it (a backend top-k sampler per slot on the MTP context with
--spec-draft-backend-sampling, the default; each draft-mtp case is run again with --no-spec-draft-backend-sampling),
then a prompt of 4 tokens on every slot as llama-server runs it: the target's decode, common_speculative_process (the
MTP context's first decode: its re-reserve) and one common_speculative_draft on every slot. Sizes printed in MiB have
two decimals; the output and compute buffers after the samplers are also read back in bytes (PROBE lines).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import llamacpp_models as lm  # noqa: E402
import llamacpp_mtp_models as mm  # noqa: E402
from probe_fixture import build_probe, logged_buffers, probe_args, probe_values, write_probe_fixture  # noqa: E402
from record_spec_limits import COMMON  # noqa: E402

# (n_ctx, n_parallel, n_batch, n_ubatch, --spec-draft-n-max, -fa, -ctk, -ctv, -ctkd, -ctvd, draft-mtp on), each run
# with --spec-draft-backend-sampling (1, the default) and, with draft-mtp, --no-spec-draft-backend-sampling (0)
CASES = [(4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 0),
         (4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 1),
         (8192, 1, 2048, 512, 7, "auto", "f16", "f16", "f16", "f16", 1),
         (16384, 2, 1024, 256, 3, "off", "f16", "f16", "f16", "f16", 1),
         (8192, 4, 2048, 512, 5, "on", "q8_0", "q8_0", "q4_0", "q4_0", 1),
         (4096, 8, 512, 512, 16, "auto", "f16", "f16", "q8_0", "f16", 1),
         # small ubatches: the MTP graph's activations are small, the sampling nodes raise its compute buffer
         (512, 8, 64, 8, 3, "auto", "f16", "f16", "f16", "f16", 1),
         (1024, 16, 64, 16, 3, "off", "f16", "f16", "q8_0", "f16", 1)]
MODELS = ("qwen3next-mtp", "qwen3next-mtp-q4", "qwen35-mtp", "qwen35-mtp-q4", "qwen35moe-mtp", "qwen35moe-mtp-q4")
# files without MTP blocks, with draft-mtp: refused; an MTP-only sidecar loaded as the target
ODD = ("qwen3next", "qwen35", "qwen35moe", "qwen35-mtp-only")
# -ctvd q8_0 with -fa off: llama_init_from_model refuses the MTP context (quantized V cache without flash attention)
# -ub 4 with --spec-draft-n-max 3 on qwen35 (n_rs_seq 3): split_equal asserts n_ubatch > n_rs_seq + 1, an abort
REFUSED = [("qwen35-mtp", (1024, 4, 512, 512, 3, "off", "f16", "f16", "f16", "q8_0", 1), 1),
           ("qwen35-mtp", (256, 4, 32, 4, 3, "auto", "f16", "f16", "f16", "f16", 1), 1)]


def main() -> None:
    a = probe_args()
    probe = build_probe(a, "mtp_probe.cpp", COMMON)
    tmp = probe.parent  # the test models are written beside it
    runs = []
    todo = [(m, c, 1) for m in MODELS for c in CASES] + [(m, c, 0) for m in MODELS for c in CASES if c[-1]] \
        + [(m, CASES[1], 1) for m in ODD] + REFUSED
    for model, case, sampling in todo:
        path = tmp / f"{model}.gguf"
        if not path.exists():
            (mm.write if model in mm.MODELS else lm.write_gguf)(model, path)
        out = subprocess.run([str(probe), str(path), *map(str, case), str(sampling)], capture_output=True, text=True,
                             timeout=300, errors="replace")
        rec: dict = {"model": model}
        rec.update(zip(("n_ctx", "n_parallel", "n_batch", "n_ubatch", "draft_n_max", "flash_attn", "type_k",
                        "type_v", "type_k_draft", "type_v_draft"), case))
        rec["draft_mtp"] = bool(case[-1])
        rec["backend_sampling"] = sampling
        rec.update(probe_values(out.stdout))
        rec["buffers"] = logged_buffers(out.stderr)
        rows = re.search(r"invalid nextn embeddings id \d+, reason: out of range \[0, (\d+)\)", out.stderr)
        if rows:  # the target's nextn rows after a decode with draft-mtp (llama_get_embeddings_nextn_ith)
            rec["target_nextn_rows"] = int(rows.group(1))
        rec["exit"] = out.returncode
        if out.returncode:  # what llama.cpp said last before it stopped
            rec["last_said"] = [ln.replace(f"{tmp}/", "").replace(f"{a.src}/", "")
                                for ln in out.stderr.splitlines()[-3:]]
            rec["asserted"] = [ln.split(": ", 1)[-1] for ln in out.stderr.splitlines() if "GGML_ASSERT" in ln]
        rec["said"] = [ln.split(" ", 2)[-1].replace(f"{tmp}/", "") for ln in out.stderr.splitlines()
                       if ("MTP" in ln and "context" in ln) or "requires flash_attn" in ln]
        runs.append(rec)
        print(rec, flush=True)
    write_probe_fixture(
        "llamacpp_mtp_runs",
        "buffers printed by a real llama.cpp (CPU backend, common/ and libllama of the tree) for --spec-type "
        "draft-mtp on the GGUFs of tests/llamacpp_mtp_models.py, run by tools/record_llamacpp_mtp.py with "
        "tools/mtp_probe.cpp as llama-server's load_model makes its contexts: server_output_limits, "
        "common_init_from_params (the target, load_mtp from the types), then common_base_params_to_speculative and "
        "common_speculative_init_from_params (the MTP context on the target model) and common_speculative_init (with "
        "backend_sampling 1, the default, a backend top-k(10) sampler per slot on the MTP context; 0: "
        "--no-spec-draft-backend-sampling), then a prompt of 4 tokens on every slot: the target's decode and the "
        "count of nextn rows its output buffer holds (target_nextn_rows: llama_get_embeddings_nextn_ith's 'out of "
        "range [0, N)'), common_speculative_process (the MTP context's first decode and re-reserve) and one "
        "common_speculative_draft on every slot; context 'target', 'mtp' (created), 'spec_init', 'target_decode', "
        "'mtp_process' or 'mtp_draft' says in which phase a buffer was printed; sizes in MiB with two decimals as "
        "printed; the PROBE fields *_output* / *_compute* are bytes read from the contexts (buf_output, "
        "llama_get_memory_breakdown)",
        "tools/record_llamacpp_mtp.py", a.commit, runs)


if __name__ == "__main__":
    main()
