"""Record the buffer sizes a real llama.cpp prints for the small GGUF models of
tests/llamacpp_models.py, at many context settings, into tests/data/llamacpp_runs.json.

Needs llama-cpp-python (it builds llama.cpp from source; 0.3.35 was used):
    python3 -m venv /tmp/llama && /tmp/llama/bin/pip install llama-cpp-python==0.3.35 gguf numpy
    /tmp/llama/bin/python tools/record_llamacpp.py [--out tests/data/llamacpp_runs.json]

Each run is a fresh process: it loads one model with the low-level C API (llama_model_load_from_file,
llama_init_from_model), which makes llama.cpp build its caches and reserve its worst-case graphs,
and we parse the log lines it prints ("... model buffer size = X MiB", "KV buffer", "RS buffer",
"output buffer", "compute buffer", and the KV/RS "size = ..." summaries). Sizes are printed in MiB
with two decimals; that is the precision of the recording.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import llamacpp_models  # noqa: E402

# The settings recorded per model; SWA and recurrent models get their own extra axes.
BASE = [
    {"n_ctx": 4096},
    {"n_ctx": 0},  # llama.cpp's default: the training context
    {"n_ctx": 5000},  # padded to 256
    {"n_ctx": 8192, "n_seq_max": 4, "kv_unified": True},
    {"n_ctx": 8192, "n_seq_max": 3, "kv_unified": False},  # 3 x pad256(8192/3) cells
    {"n_ctx": 4096, "type_k": "q8_0", "type_v": "q8_0"},
    {"n_ctx": 4096, "type_k": "q4_0", "flash_attn": "off"},  # quantized K alone works without FA
    {"n_ctx": 4096, "flash_attn": "off"},
    {"n_ctx": 8192, "flash_attn": "off", "n_ubatch": 256},
    {"n_ctx": 2048, "n_ubatch": 128, "n_batch": 512},
    {"n_ctx": 16384, "n_ubatch": 1024, "n_batch": 1024},
]
SWA_EXTRA = [{"n_ctx": 8192, "swa_full": True}, {"n_ctx": 8192, "n_seq_max": 2, "kv_unified": True},
             {"n_ctx": 8192, "n_seq_max": 2, "kv_unified": False}]
REC_EXTRA = [{"n_ctx": 4096, "n_seq_max": 8, "kv_unified": True}]

WORKER = r"""
import ctypes, json, sys
import llama_cpp as L
path, s = sys.argv[1], json.loads(sys.argv[2])
L.llama_backend_init()
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(path.encode(), mp)
if not model:
    print("VRAMCALC_FAIL model", file=sys.stderr); sys.exit(2)
print("VRAMCALC_MODEL_SIZE", L.llama_model_size(model), file=sys.stderr)
cp = L.llama_context_default_params()
cp.n_ctx = s.get("n_ctx", 4096)
cp.n_batch = s.get("n_batch", 2048)
cp.n_ubatch = s.get("n_ubatch", 512)
cp.n_seq_max = s.get("n_seq_max", 1)
cp.kv_unified = s.get("kv_unified", False)
cp.swa_full = s.get("swa_full", False)
cp.flash_attn_type = {"auto": -1, "off": 0, "on": 1}[s.get("flash_attn", "auto")]
types = {"f16": 1, "f32": 0, "q8_0": 8, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "iq4_nl": 20, "bf16": 30}
cp.type_k = types[s.get("type_k", "f16")]
cp.type_v = types[s.get("type_v", "f16")]
cp.n_threads = cp.n_threads_batch = 2
ctx = L.llama_init_from_model(model, cp)
if not ctx:
    print("VRAMCALC_FAIL context", file=sys.stderr); sys.exit(3)
print("VRAMCALC_N_CTX", L.llama_n_ctx(ctx), file=sys.stderr)
L.llama_free(ctx)
L.llama_model_free(model)
"""

BUF = re.compile(r"^(\w+):\s+(\S+)\s+(model|KV|RS|output|compute) buffer size =\s+([\d.]+) MiB")
KV_SIZE = re.compile(r"^llama_kv_cache: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+)/(\d+) seqs\), "
                     r"K \((\w+)\):\s+([\d.]+) MiB, V \((\w+)\):\s+([\d.]+) MiB")
RS_SIZE = re.compile(r"^llama_memory_recurrent: size =\s+([\d.]+) MiB \(\s*(\d+) cells,\s+(\d+) layers,\s+(\d+) seqs\s+"
                     r"(\d+) rs_seq\), R \((\w+)\):\s+([\d.]+) MiB, S \((\w+)\):\s+([\d.]+) MiB")
CPARAM = re.compile(r"^llama_context: (n_ctx|n_ctx_seq|n_batch|n_ubatch|flash_attn|kv_unified|n_seq_max)\s+= (\S+)")


def run_one(python: str, gguf_path: Path, settings: dict) -> dict:
    p = subprocess.run([python, "-c", WORKER, str(gguf_path), json.dumps(settings)], capture_output=True, text=True,
                       timeout=600)
    rec: dict = {"settings": settings, "buffers": [], "kv_caches": [], "rs": [], "cparams": {}}
    for line in p.stderr.splitlines():
        if m := BUF.match(line):
            rec["buffers"].append({"where": m.group(1), "buffer": m.group(2), "kind": m.group(3),
                                   "mib": float(m.group(4))})
        elif m := KV_SIZE.match(line):
            rec["kv_caches"].append({"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3)),
                                     "seqs": int(m.group(5)), "type_k": m.group(6), "k_mib": float(m.group(7)),
                                     "type_v": m.group(8), "v_mib": float(m.group(9))})
        elif m := RS_SIZE.match(line):
            rec["rs"].append({"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3)),
                              "seqs": int(m.group(4)), "r_mib": float(m.group(7)), "s_mib": float(m.group(9))})
        elif m := CPARAM.match(line):
            rec["cparams"][m.group(1)] = m.group(2)
        elif line.startswith("VRAMCALC_MODEL_SIZE"):
            rec["model_size_bytes"] = int(line.split()[1])
        elif line.startswith("VRAMCALC_N_CTX"):
            rec["n_ctx"] = int(line.split()[1])
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("VRAMCALC_")]
        rec["error"] = lines[-2:] or [f"exit {p.returncode}"]
    return rec


def settings_for(name: str) -> list[dict]:
    family = llamacpp_models.MODELS[name][0]
    out = list(BASE)
    if family in ("gemma2", "gemma3", "gpt-oss"):
        out += SWA_EXTRA
    if family in ("mamba", "mamba2", "granitehybrid", "falcon-h1", "qwen3next"):
        out += REC_EXTRA
    return out


def llama_cpp_build(python: str) -> tuple[str, str]:
    """The llama-cpp-python version and llama.cpp's system info line of the interpreter that records."""
    info = subprocess.run([python, "-c", "import sys, types; sys.modules.setdefault('diskcache', "
                           "types.ModuleType('diskcache')); import llama_cpp; print(llama_cpp.__version__); "
                           "print(llama_cpp.llama_print_system_info().decode())"], capture_output=True, text=True)
    version, sysinfo = (info.stdout.strip().split("\n", 1) + [""])[:2]
    return version, sysinfo


def write_runs(out_path: str, what: str, version: str, sysinfo: str, tool: str, runs: list) -> None:
    """The recorded runs with the build and machine they came from."""
    out = {
        "what": what,
        "llama_cpp_python": version,
        "llama_cpp_commit": "4df29be (vendored by llama-cpp-python " + version + ")",
        "system_info": sysinfo.strip(),
        "machine": platform.machine(),
        "tool": tool,
        "runs": runs,
    }
    Path(out_path).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(runs)} runs -> {out_path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the interpreter that has llama_cpp")
    ap.add_argument("--out", default=str(ROOT / "tests/data/llamacpp_runs.json"))
    ap.add_argument("--models", nargs="*", default=list(llamacpp_models.MODELS))
    args = ap.parse_args()
    version, sysinfo = llama_cpp_build(args.python)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = llamacpp_models.write_gguf(name, Path(tmp) / f"{name}.gguf")
            for s in settings_for(name):
                rec = run_one(args.python, path, s)
                rec["model"] = name
                runs.append(rec)
                status = rec.get("error") or [f"{b['kind']} {b['buffer']} {b['mib']}" for b in rec["buffers"]]
                print(name, json.dumps(s), status, flush=True)
    write_runs(args.out, "buffer sizes printed by a real llama.cpp (CPU backend) loading the models of "
               "tests/llamacpp_models.py",
               version, sysinfo, "tools/record_llamacpp.py", runs)


if __name__ == "__main__":
    main()
