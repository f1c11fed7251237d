"""Record what a real llama.cpp (CPU backend) allocates for --spec-type draft-dflash / draft-dspark with -md, into
tests/data/llamacpp_dflash_runs.json.

Builds tools/dflash_probe.cpp against a llama.cpp tree (the tree llama-cpp-python 0.3.35's sdist vendors,
ggml-org/llama.cpp@4df29be4f, the modelled build) as tools/record_llamacpp_mtp.py does:

    python3 tools/record_llamacpp_dflash.py --src vendor/llama.cpp --build /tmp/lcppbuild --commit 4df29be

Each case is a fresh process on a qwen3 target and a DFlash / DSpark draft of tests/llamacpp_dflash_models.py: the
target's buffers as common_init_from_params makes them, the draft model's and its context's as
common_speculative_init_from_params makes them, then, once common_speculative_init set the DFlash implementation
up, the buffers a prompt's target decode and common_speculative_process (the draft's encode and KV injection)
and a drafting step on every slot re-reserve or grow: the printed compute buffers, and the output buffers' bytes and
the compute buffers after each step read from the contexts (PROBE lines). Printed sizes are in MiB with two decimals: that is their precision.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import llamacpp_dflash_models as dm  # noqa: E402
from probe_fixture import build_probe, logged_buffers, probe_args, probe_values, write_probe_fixture  # noqa: E402
from record_spec_limits import COMMON  # noqa: E402

FIELDS = ("target", "draft", "n_ctx", "n_parallel", "n_batch", "n_ubatch", "draft_n_max", "flash_attn", "type_k",
          "type_v", "type_k_draft", "type_v_draft", "spec_type", "n_prompt", "backend_sampling")
CASES = [("qwen3-t", "dflash-a", 4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", "draft-dflash", 64),
         ("qwen3-t", "dflash-a", 8192, 1, 2048, 512, 15, "on", "f16", "f16", "q8_0", "q8_0", "draft-dflash", 600),
         ("qwen3-t", "dflash-a", 4096, 2, 1024, 256, 20, "off", "f16", "f16", "f16", "f16", "draft-dflash", 300),
         ("qwen3-t-q4", "dflash-q8", 8192, 4, 2048, 512, 7, "auto", "q8_0", "q8_0", "f16", "f16", "draft-dflash", 128),
         ("qwen3-t-q4", "dflash-q8", 4096, 8, 512, 512, 3, "on", "f16", "f16", "q4_0", "q4_0", "auto", 64),
         ("qwen3-t-q4", "dflash-q8", 2048, 3, 2048, 128, 5, "off", "f16", "f16", "f16", "f16", "draft-dflash", 200),
         ("qwen3-t", "dspark-a", 4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", "draft-dspark", 64),
         ("qwen3-t", "dspark-a", 16384, 2, 2048, 512, 8, "on", "f16", "f16", "f16", "f16", "auto", 512),
         ("qwen3-t", "dspark-a", 4096, 4, 2048, 512, 12, "off", "f16", "f16", "q8_0", "f16", "draft-dspark", 100),
         ("qwen3-t", "dspark-a", 4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", "draft-dflash", 64),
         ("qwen3-t", "dflash-nolayers", 4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", "draft-dflash", 64)]
CASES = [c + (1,) for c in CASES] + [  # --no-spec-draft-backend-sampling: no samplers on the draft context
    ("qwen3-t", "dflash-a", 4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", "draft-dflash", 64, 0),
    ("qwen3-t-q4", "dflash-q8", 8192, 2, 1024, 256, 7, "on", "f16", "f16", "q8_0", "q8_0", "draft-dflash", 300, 0),
    ("qwen3-t", "dspark-a", 4096, 3, 2048, 512, 5, "off", "f16", "f16", "f16", "f16", "auto", 100, 0)]
SAID = ("DFlash", "clamping", "auto-detected", "failed", "block_size", "error", "requires")


def main() -> None:
    a = probe_args()
    probe = build_probe(a, "dflash_probe.cpp", COMMON)
    tmp = probe.parent
    runs = []
    for case in CASES:
        for name in case[:2]:
            if not (tmp / f"{name}.gguf").exists():
                dm.write(name, tmp / f"{name}.gguf")
        out = subprocess.run([str(probe), str(tmp / f"{case[0]}.gguf"), str(tmp / f"{case[1]}.gguf"),
                              *map(str, case[2:])], capture_output=True, text=True, timeout=600, errors="replace")
        rec: dict = dict(zip(FIELDS, case))
        rec.update(probe_values(out.stdout))
        rec["buffers"] = logged_buffers(out.stderr)
        rec["exit"] = out.returncode
        rec["said"] = [ln.split(" ", 2)[-1].replace(f"{tmp}/", "") for ln in out.stderr.splitlines()
                       if any(w in ln for w in SAID) and "print_info" not in ln and "llama_model_loader" not in ln]
        runs.append(rec)
        print(rec, flush=True)
    write_probe_fixture(
        "llamacpp_dflash_runs",
        "buffers of a real llama.cpp (CPU backend, common/ and libllama of the tree) for --spec-type draft-dflash / "
        "draft-dspark with -md on the GGUFs of tests/llamacpp_dflash_models.py, run by tools/record_llamacpp_dflash.py "
        "with tools/dflash_probe.cpp as llama-server's load_model makes its contexts (the type from the draft's header "
        "for spec_type auto: common_speculative_types_from_gguf): server_output_limits, common_init_from_params (the "
        "target), common_base_params_to_speculative and common_speculative_init_from_params (the draft model and "
        "context), common_speculative_init, then one prompt of n_prompt tokens decoded on the target and "
        "common_speculative_process (the draft's encode and KV injection), then one drafting step on every slot "
        "(common_speculative_draft). context says which phase printed a "
        "buffer: 'target' and 'draft' at creation, 'target_decode' the target's re-reserve with the layer inputs kept, "
        "'process' the draft's re-reserve with its backend samplers, 'draft_block' anything the drafting step printed; sizes in MiB with two decimals as printed. "
        "target_output / draft_output_process / draft_output are the output buffers' bytes after the target decode, "
        "the process and the drafting step, target_compute / draft_compute_process / draft_compute the compute "
        "buffers' bytes (llama_context::memory_breakdown); drafted: the tokens slot 0 drafted",
        "tools/record_llamacpp_dflash.py", a.commit, runs)


if __name__ == "__main__":
    main()
