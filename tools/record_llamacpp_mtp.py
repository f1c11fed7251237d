"""Record what a real llama.cpp (CPU backend) allocates for --spec-type draft-mtp, into tests/data/llamacpp_mtp_runs.json.

Builds tools/mtp_probe.cpp against a llama.cpp tree (the tree llama-cpp-python 0.3.35's sdist vendors,
ggml-org/llama.cpp@4df29be4f, the modelled build): the common/ sources llama-server's start-up path needs, compiled
here, and the tree's libllama / libggml built CPU only (as for tools/record_spec_limits.py):

    python3 tools/record_llamacpp_mtp.py --src vendor/llama.cpp --build /tmp/lcppbuild --commit 4df29be

Each case is a fresh process on a GGUF of tests/llamacpp_mtp_models.py (a qwen3next, qwen35 or qwen35moe trunk with
one NextN / MTP block; files without one, and an MTP-only sidecar, once each):
the target's model, KV, recurrent, output and compute buffers as common_init_from_params makes them (load_mtp on with
draft-mtp), then, with draft-mtp, the MTP context's buffers as common_speculative_init_from_params makes it on the
target model. Sizes are printed in MiB with two decimals: that is the precision of the recording.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import llamacpp_mtp_models as mm  # noqa: E402
from probe_fixture import build_probe, logged_buffers, probe_args, probe_values, write_probe_fixture  # noqa: E402
from record_spec_limits import COMMON  # noqa: E402

# (n_ctx, n_parallel, n_batch, n_ubatch, --spec-draft-n-max, -fa, -ctk, -ctv, -ctkd, -ctvd, draft-mtp on)
CASES = [(4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 0),
         (4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 1),
         (8192, 1, 2048, 512, 7, "auto", "f16", "f16", "f16", "f16", 1),
         (16384, 2, 1024, 256, 3, "off", "f16", "f16", "f16", "f16", 1),
         (8192, 4, 2048, 512, 5, "on", "q8_0", "q8_0", "q4_0", "q4_0", 1),
         (4096, 8, 512, 512, 16, "auto", "f16", "f16", "q8_0", "f16", 1)]
MODELS = ("qwen3next-mtp", "qwen3next-mtp-q4", "qwen35-mtp", "qwen35-mtp-q4", "qwen35moe-mtp", "qwen35moe-mtp-q4")
# files without MTP blocks, with draft-mtp: refused; an MTP-only sidecar loaded as the target
ODD = ("qwen3next", "qwen35", "qwen35moe", "qwen35-mtp-only")


def main() -> None:
    a = probe_args()
    probe = build_probe(a, "mtp_probe.cpp", COMMON)
    tmp = probe.parent  # the test models are written beside it
    runs = []
    import llamacpp_models as lm  # noqa: E402
    todo = [(m, c) for m in MODELS for c in CASES] + [(m, CASES[1]) for m in ODD]
    for model, case in todo:
        path = tmp / f"{model}.gguf"
        if not path.exists():
            (mm.write if model in mm.MODELS else lm.write_gguf)(model, path)
        if True:
            out = subprocess.run([str(probe), str(path), *map(str, case)], capture_output=True, text=True, timeout=300,
                                 errors="replace")
            rec: dict = {"model": model}
            rec.update(zip(("n_ctx", "n_parallel", "n_batch", "n_ubatch", "draft_n_max", "flash_attn", "type_k",
                            "type_v", "type_k_draft", "type_v_draft"), case))
            rec["draft_mtp"] = bool(case[-1])
            rec.update(probe_values(out.stdout))
            rec["buffers"] = logged_buffers(out.stderr)
            rows = re.search(r"invalid nextn embeddings id \d+, reason: out of range \[0, (\d+)\)", out.stderr)
            if rows:  # the target's nextn rows after a decode with draft-mtp (llama_get_embeddings_nextn_ith)
                rec["target_nextn_rows"] = int(rows.group(1))
            rec["exit"] = out.returncode
            if out.returncode:  # what llama.cpp said last before it stopped
                rec["last_said"] = [ln.replace(f"{tmp}/", "") for ln in out.stderr.splitlines()[-3:]]
            rec["said"] = [ln.split(" ", 2)[-1].replace(f"{tmp}/", "") for ln in out.stderr.splitlines() if "MTP" in ln and "context" in ln]
            runs.append(rec)
            print(rec, flush=True)
    write_probe_fixture(
        "llamacpp_mtp_runs",
        "buffers printed by a real llama.cpp (CPU backend, common/ and libllama of the tree) for --spec-type "
        "draft-mtp on the GGUFs of tests/llamacpp_mtp_models.py, run by tools/record_llamacpp_mtp.py with "
        "tools/mtp_probe.cpp as llama-server's load_model makes its contexts: server_output_limits, "
        "common_init_from_params (the target, load_mtp from the types), then common_base_params_to_speculative and "
        "common_speculative_init_from_params (the MTP context on the target model) and common_speculative_init, then one decode of 4 tokens on the target and the count of nextn rows its "
        "output buffer holds (target_nextn_rows: llama_get_embeddings_nextn_ith's 'out of range [0, N)'); "
        "context 'target' or 'mtp' says which context printed a buffer; sizes in MiB with two decimals as printed",
        "tools/record_llamacpp_mtp.py", a.commit, runs)


if __name__ == "__main__":
    main()
