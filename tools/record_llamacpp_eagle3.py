"""Record what a real llama.cpp (CPU backend) allocates for --spec-type draft-eagle3 -md DRAFT, into
tests/data/llamacpp_eagle3_runs.json.

Builds tools/eagle3_probe.cpp against a llama.cpp tree (the tree llama-cpp-python 0.3.35's sdist vendors,
ggml-org/llama.cpp@4df29be4f, the modelled build): the common/ sources llama-server's start-up path needs, compiled
here, and the tree's libllama / libggml built CPU only (as for tools/record_spec_limits.py):

    python3 tools/record_llamacpp_eagle3.py --src vendor/llama.cpp --build /tmp/lcppbuild --commit 4df29be

Each case is a fresh process on a target of tests/llamacpp_models.py and an EAGLE-3 draft of
tests/llamacpp_eagle3_models.py (and, once each, a draft that is not EAGLE-3, one naming a target layer past the
target's, one without eagle3.target_layers): the target's buffers as common_init_from_params makes them, the draft's
as common_speculative_init_from_params makes them, then what common_speculative_init, a prompt batch of n_batch tokens
on the target and common_speculative_process (the draft's encoder and decoder) reallocate. The log's buffer lines are
in MiB with two decimals; every buffer libllama allocates is also recorded in bytes with the function that asked for it
(the probe's interposed ggml_backend_buft_alloc_buffer).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))
import llamacpp_eagle3_models as em  # noqa: E402
import llamacpp_models as lm  # noqa: E402
from probe_fixture import build_probe, logged_buffers, probe_args, probe_values, write_probe_fixture  # noqa: E402
from record_spec_limits import COMMON  # noqa: E402

# (n_ctx, n_parallel, n_batch, n_ubatch, --spec-draft-n-max, -fa, -ctk, -ctv, -ctkd, -ctvd, draft backend sampling,
# a unified KV cache (llama-server's -np auto, --kv-unified) or one stream per slot (-np N))
CASES = [(4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 1, 1),
         (4096, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 0, 1),
         (8192, 1, 2048, 512, 7, "auto", "f16", "f16", "f16", "f16", 1, 1),
         (16384, 2, 1024, 256, 3, "off", "f16", "f16", "f16", "f16", 1, 1),
         (8192, 4, 2048, 512, 5, "on", "q8_0", "q8_0", "q4_0", "q4_0", 0, 1),
         (4096, 8, 512, 512, 16, "auto", "f16", "f16", "q8_0", "f16", 1, 1),
         (8192, 4, 2048, 512, 3, "auto", "f16", "f16", "f16", "f16", 1, 0)]
PAIRS = (("llama-a", "eagle3-a"), ("llama-a", "eagle3-own"), ("llama-a", "eagle3-wide"), ("qwen3", "eagle3-a"))
# a qwen3moe target (4 layers: eagle3-a's last id is its n_layer), its first case
MOE = (("qwen3moe", "eagle3-a"),)
# refused or without speculation: a draft that is not EAGLE-3, a target layer past the target's, no target_layers;
# and the target's last layer (n_layer) as an id
ODD = (("llama-a", "llama-a"), ("llama-a", "eagle3-far"), ("llama-a", "eagle3-nolayers"), ("llama-a", "eagle3-last"))
ALLOC = re.compile(r"^VRAMCALC_ALLOC (\S+) (\S+) (\d+) (\S+)$")
KEYS = ("n_ctx", "n_parallel", "n_batch", "n_ubatch", "draft_n_max", "flash_attn", "type_k", "type_v", "type_k_draft",
        "type_v_draft", "backend_sampling", "kv_unified")


def run_one(probe: Path, tmp: Path, target: str, draft: str, case: tuple, src: Path | None = None) -> dict:
    for name in (target, draft):
        path = tmp / f"{name}.gguf"
        if not path.exists():
            (em.write if name in em.MODELS else lm.write_gguf)(name, path)
    out = subprocess.run([str(probe), str(tmp / f"{target}.gguf"), str(tmp / f"{draft}.gguf"), *map(str, case)],
                         capture_output=True, text=True, timeout=600, errors="replace")
    rec: dict = {"target": target, "draft": draft}
    rec.update(zip(KEYS, case))
    rec["backend_sampling"], rec["kv_unified"] = bool(case[-2]), bool(case[-1])
    rec.update(probe_values(out.stdout))
    rec["allocs"] = [{"phase": m2.group(1), "buft": m2.group(2), "bytes": int(m2.group(3)), "by": m2.group(4)}
                     for line in out.stdout.splitlines() if (m2 := ALLOC.match(line)) and int(m2.group(3))]
    rec["buffers"] = logged_buffers(out.stderr)
    rec["exit"] = out.returncode
    said = [ln.replace(f"{tmp}/", "").replace(f"{src}/" if src else f"{tmp}/", "") for ln in out.stderr.splitlines()
            if not ln.startswith("VRAMCALC_")]  # file names relative to the tree and the models' folder
    if out.returncode:
        rec["last_said"] = said[-3:]
    rec["said"] = [ln.split(" ", 2)[-1] if ln[:1].isdigit() else ln for ln in said
                   if ("eagle3" in ln.lower() or "speculative" in ln.lower() or "extract_layers" in ln
                       or "draft model" in ln) and " - kv " not in ln and "print_info" not in ln]
    return rec


def main() -> None:
    a = probe_args()
    probe = build_probe(a, "eagle3_probe.cpp", COMMON, link=("-rdynamic", "-ldl"))
    tmp = probe.parent
    runs = []
    for (target, draft), case in [(p, c) for p in PAIRS for c in CASES] + [(p, CASES[0]) for p in MOE + ODD]:
        rec = run_one(probe, tmp, target, draft, case, a.src.resolve())
        runs.append(rec)
        print({k: v for k, v in rec.items() if k not in ("allocs", "buffers")}, flush=True)
    write_probe_fixture(
        "llamacpp_eagle3_runs",
        "buffers of a real llama.cpp (CPU backend, common/ and libllama of the tree) for --spec-type draft-eagle3 "
        "-md DRAFT on the targets of tests/llamacpp_models.py and the EAGLE-3 drafts of "
        "tests/llamacpp_eagle3_models.py, "
        "run by tools/record_llamacpp_eagle3.py with tools/eagle3_probe.cpp as llama-server's load_model makes its "
        "contexts: server_output_limits, common_init_from_params (the target), common_base_params_to_speculative and "
        "common_speculative_init_from_params (the draft, ctx_other the target), common_speculative_init "
        "(common_speculative_impl_draft_eagle3), then a prompt batch of n_batch tokens decoded on the target and "
        "given to common_speculative_process; buffers: the log's lines in MiB with two decimals, context the phase "
        "that printed them (target, draft, spec_init, target_decode, process); allocs: every buffer libllama "
        "allocated (but the empty probes), in bytes, with the phase and the function that asked "
        "(ggml_backend_buft_alloc_buffer's caller; '?' inside libggml: the KV cache's and the compute buffers)",
        "tools/record_llamacpp_eagle3.py", a.commit, runs)


if __name__ == "__main__":
    main()
