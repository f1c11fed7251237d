"""Record what a real llama.cpp's speculative code makes of --spec-type lists, into tests/data/llamacpp_spec_limits.json.

Builds tools/spec_limits_probe.cpp against a llama.cpp tree (the tree llama-cpp-python 0.3.35's sdist vendors,
ggml-org/llama.cpp@4df29be4f, the modelled build): the common/ sources the speculative path needs, compiled here, and
the tree's libllama / libggml built CPU only (as for tools/record_mtmd_limits.py):

    python3 tools/record_spec_limits.py --src vendor/llama.cpp --build /tmp/lcppbuild --commit 4df29be

Each case is a fresh process: common_speculative_n_max and common_speculative_get_output_limits (the rows llama-server's
server_output_limits reserves, tools/server/server-context.cpp), then common_speculative_init with no draft context
(as llama-server calls it for the ngram types, and for draft-simple without -md) and the heap bytes it keeps.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from probe_fixture import build_probe, probe_args, write_probe_fixture  # noqa: E402
# the common/ files the probe links (speculative.cpp and what it calls), and the build's build-info.cpp
COMMON = ("speculative", "ngram-map", "ngram-mod", "ngram-cache", "log", "common", "sampling", "fit",
          "reasoning-budget", "unicode", "trie")
# (types, n_seq, n_batch, draft n_max, ngram-mod n_max, ngram-simple size_m, ngram-map-k size_m, ngram-map-k4v size_m):
# common.h's defaults (3, 64, 48, 48, 48) at -np auto's 4 slots, then other values
CASES = [("none", 4, 2048, 3, 64, 48, 48, 48), ("ngram-mod", 4, 2048, 3, 64, 48, 48, 48),
         ("ngram-mod", 2, 2048, 3, 16, 48, 48, 48), ("ngram-mod", 4, 128, 3, 64, 48, 48, 48),
         ("ngram-simple", 4, 2048, 3, 64, 10, 48, 48), ("ngram-map-k", 4, 2048, 3, 64, 48, 48, 48),
         ("ngram-map-k", 1, 2048, 3, 64, 48, 5, 48), ("ngram-map-k4v", 2, 2048, 3, 64, 48, 48, 100),
         ("ngram-cache", 4, 2048, 3, 64, 48, 48, 48), ("ngram-simple,ngram-mod", 4, 2048, 3, 64, 48, 48, 48),
         ("ngram-map-k,ngram-map-k4v", 3, 2048, 3, 64, 48, 20, 30), ("draft-simple", 4, 2048, 3, 64, 48, 48, 48),
         ("draft-simple", 1, 2048, 7, 64, 48, 48, 48), ("ngram-map-k,draft-simple", 4, 2048, 3, 64, 48, 48, 48),
         ("ngram-mod,ngram-x", 4, 2048, 3, 64, 48, 48, 48)]  # a name it does not know: refused
PROBE = re.compile(r"^PROBE n_max=(-?\d+) total=(\d+) per_seq=(\d+) spec=(\d) heap=(\d+) err=(.*)$", re.M)


def main() -> None:
    a = probe_args()
    probe = build_probe(a, "spec_limits_probe.cpp", COMMON)
    runs = []
    for case in CASES:
        out = subprocess.run([str(probe), *map(str, case)], capture_output=True, text=True, timeout=120)
        m = PROBE.search(out.stdout)
        assert m, out.stdout + out.stderr
        types, n_seq, n_batch, draft, mod, simple, map_k, map_k4v = case
        runs.append({"types": types.split(","), "n_seq": n_seq, "n_batch": n_batch, "draft_n_max": draft,
                     "ngram_mod_n_max": mod, "ngram_simple_size_m": simple, "ngram_map_k_size_m": map_k,
                     "ngram_map_k4v_size_m": map_k4v, "n_max": int(m.group(1)), "outputs_total": int(m.group(2)),
                     "outputs_per_seq": int(m.group(3)), "speculates": m.group(4) == "1",
                     "heap_bytes": int(m.group(5)), "error": m.group(6)})
        print(runs[-1])
    write_probe_fixture(
        "llamacpp_spec_limits",
        "a real llama.cpp's speculative code (common/speculative.cpp and the common/ files it calls, with "
        "the tree's CPU libllama) run by tools/record_spec_limits.py with tools/spec_limits_probe.cpp: "
        "common_speculative_n_max, common_speculative_get_output_limits(n_batch, n_seq, n_max) (the rows "
        "llama-server reserves), then common_speculative_init(params, n_seq) with no draft context: whether "
        "it made a speculative context, the error it threw, and the heap bytes it kept (glibc mallinfo2 "
        "uordblks + hblkhd, before and after)",
        "tools/record_spec_limits.py", a.commit, runs)


if __name__ == "__main__":
    main()
