"""Record what a real llama.cpp does with --override-kv on the small GGUF models of tests/llamacpp_models.py, into
tests/data/llamacpp_kv_override_runs.json: the buffers it prints, the hparams print_info shows (n_ctx_train,
n_expert_used, n_swa), its override log lines, and the error where it refuses to load.

Each run is a fresh process that loads one model with the low-level C API, the overrides in
llama_model_params.kv_overrides (what common/common.cpp common_model_params_to_llama passes for --override-kv),
and creates a context (tools/record_llamacpp.py does the same without overrides). Needs llama.cpp at 4df29be through
llama-cpp-python 0.3.35's bindings:
    /tmp/llama/bin/pip install llama-cpp-python==0.3.35 gguf numpy
    /tmp/llama/bin/python tools/record_llamacpp_kv_overrides.py
(or its source tree on PYTHONPATH with LLAMA_CPP_LIB_PATH at a CPU build of its vendor/llama.cpp).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))

import llamacpp_models  # noqa: E402
from record_llamacpp import BUF, CPARAM, KV_SIZE, llama_cpp_build, write_runs  # noqa: E402

# (model, settings, overrides as KEY=TYPE:VALUE items, in order)
CASES: list[tuple[str, dict, list[str]]] = [
    ("qwen3moe", {"n_ctx": 4096}, []),
    ("qwen3moe", {"n_ctx": 4096}, ["qwen3moe.expert_used_count=int:1"]),
    ("qwen3moe", {"n_ctx": 4096}, ["qwen3moe.expert_used_count=int:8"]),
    ("qwen3moe", {"n_ctx": 4096, "n_ubatch": 128}, ["qwen3moe.expert_used_count=int:6"]),
    ("qwen3moe", {"n_ctx": 4096}, ["qwen3moe.expert_used_count=int:6", "qwen3moe.expert_used_count=int:1"]),
    ("qwen3moe", {"n_ctx": 4096}, ["qwen3moe.expert_used_count=float:6"]),
    ("qwen3moe", {"n_ctx": 4096}, ["llama.expert_used_count=int:6"]),
    ("qwen3moe", {"n_ctx": 4096}, ["qwen3moe.expert_used_count=int:9"]),
    ("qwen3moe", {"n_ctx": 4096}, ["qwen3moe.expert_count=int:4"]),
    ("llama-a", {"n_ctx": 0}, ["llama.context_length=int:4096"]),
    ("llama-a", {"n_ctx": 0}, ["llama.context_length=int:6000"]),
    ("llama-a", {"n_ctx": 0}, ["llama.context_length=str:4096"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.block_count=int:5"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.block_count=int:6"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.attention.head_count_kv=int:4"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.feed_forward_length=int:1024"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.embedding_length=int:256"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.attention.key_length=int:64"]),
    ("llama-a", {"n_ctx": 4096}, ["llama.attention.key_length=int:32"]),
    ("llama-a", {"n_ctx": 4096}, ["tokenizer.ggml.add_bos_token=bool:false", "llama.rope.freq_base=float:50000"]),
    ("gemma2", {"n_ctx": 8192}, []),
    ("gemma2", {"n_ctx": 8192}, ["gemma2.attention.sliding_window=int:256"]),
    ("gemma2", {"n_ctx": 8192, "n_seq_max": 2, "kv_unified": True}, ["gemma2.attention.sliding_window=int:4096"]),
    ("gemma3", {"n_ctx": 8192}, ["gemma3.attention.sliding_window=int:2048"]),
    ("gpt-oss", {"n_ctx": 8192}, ["gpt-oss.attention.sliding_window=int:1024", "gpt-oss.expert_used_count=int:4"]),
]

WORKER = r"""
import ctypes, json, sys, types
sys.modules.setdefault("diskcache", types.ModuleType("diskcache"))  # llama_cpp.llama_cache imports it; unused here
import llama_cpp as L
path, s, items = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
L.llama_backend_init()
mp = L.llama_model_default_params()
arr = (L.llama_model_kv_override * (len(items) + 1))()
for i, item in enumerate(items):  # common/common.cpp string_parse_kv_override
    key, _, rest = item.partition("=")
    tag, _, val = rest.partition(":")
    arr[i].key = key.encode()
    if tag == "int":
        arr[i].tag, arr[i].value.val_i64 = L.LLAMA_KV_OVERRIDE_TYPE_INT, int(val)
    elif tag == "float":
        arr[i].tag, arr[i].value.val_f64 = L.LLAMA_KV_OVERRIDE_TYPE_FLOAT, float(val)
    elif tag == "bool":
        arr[i].tag, arr[i].value.val_bool = L.LLAMA_KV_OVERRIDE_TYPE_BOOL, val == "true"
    else:
        arr[i].tag, arr[i].value.val_str = L.LLAMA_KV_OVERRIDE_TYPE_STR, val.encode()
arr[len(items)].key = b""
if items:
    mp.kv_overrides = arr
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
cp.swa_full = s.get("swa_full", False)  # the library's default is true; llama-server's --swa-full is off
cp.n_threads = cp.n_threads_batch = 2
ctx = L.llama_init_from_model(model, cp)
if not ctx:
    print("VRAMCALC_FAIL context", file=sys.stderr); sys.exit(3)
print("VRAMCALC_N_CTX", L.llama_n_ctx(ctx), file=sys.stderr)
L.llama_free(ctx)
L.llama_model_free(model)
"""

HPARAM = re.compile(r"^print_info: (n_ctx_train|n_expert_used|n_expert|n_swa|n_layer|n_head_kv|n_ff)\s+= (.+)$")
OVERRIDE_LOG = re.compile(r"(Using metadata override|Bad metadata override)")
ERROR = re.compile(r"(error|failed|GGML_ASSERT|wrong|missing tensor)", re.IGNORECASE)


def run_one(python: str, gguf_path: Path, settings: dict, items: list[str]) -> dict:
    p = subprocess.run([python, "-c", WORKER, str(gguf_path), json.dumps(settings), json.dumps(items)],
                       capture_output=True, text=True, timeout=600)
    rec: dict = {"settings": settings, "overrides": items, "buffers": [], "kv_caches": [], "cparams": {},
                 "hparams": {}, "override_log": []}
    for line in p.stderr.splitlines():
        if m := BUF.match(line):
            rec["buffers"].append({"where": m.group(1), "buffer": m.group(2), "kind": m.group(3),
                                   "mib": float(m.group(4))})
        elif m := KV_SIZE.match(line):
            rec["kv_caches"].append({"mib": float(m.group(1)), "cells": int(m.group(2)), "layers": int(m.group(3)),
                                     "seqs": int(m.group(5)), "k_mib": float(m.group(7)), "v_mib": float(m.group(9))})
        elif m := CPARAM.match(line):
            rec["cparams"][m.group(1)] = m.group(2)
        elif m := HPARAM.match(line):
            rec["hparams"][m.group(1)] = m.group(2).strip()
        elif OVERRIDE_LOG.search(line):
            rec["override_log"].append(line.strip())
        elif line.startswith("VRAMCALC_MODEL_SIZE"):
            rec["model_size_bytes"] = int(line.split()[1])
        elif line.startswith("VRAMCALC_N_CTX"):
            rec["n_ctx"] = int(line.split()[1])
    if p.returncode != 0:
        lines = [ln.strip() for ln in p.stderr.splitlines() if ERROR.search(ln) and not ln.startswith("VRAMCALC_")]
        rec["error"] = lines[:3] or [f"exit {p.returncode}"]
        rec["returncode"] = p.returncode
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the interpreter that has llama_cpp")
    ap.add_argument("--out", default=str(ROOT / "tests/data/llamacpp_kv_override_runs.json"))
    args = ap.parse_args()
    version, sysinfo = llama_cpp_build(args.python)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings, items in CASES:
            path = Path(tmp) / f"{name}.gguf"
            if not path.exists():
                llamacpp_models.write_gguf(name, path)
            rec = run_one(args.python, path, settings, items)
            rec["model"] = name
            runs.append(rec)
            print(name, items, rec.get("error") or rec["hparams"], flush=True)
    write_runs(args.out, "a real llama.cpp (CPU backend) loading the models of tests/llamacpp_models.py with KV "
               "overrides (--override-kv's llama_model_params.kv_overrides)",
               version, sysinfo, "tools/record_llamacpp_kv_overrides.py", runs)


if __name__ == "__main__":
    main()
