"""Record what a real llama.cpp (CPU backend) prints for the files of tests/llamacpp_extras_models.py: LoRA adapters'
buffers and the compute buffer once the adapter is set, a draft model's buffers in the draft context llama-server
makes, and a multimodal projector's weights and warmup compute buffer; into tests/data/llamacpp_extras_runs.json.

Needs llama-cpp-python (it builds llama.cpp from source; 0.3.35 vendors 4df29be, the modelled build):
    python3 -m venv /tmp/llama && /tmp/llama/bin/pip install llama-cpp-python==0.3.35 gguf numpy
    /tmp/llama/bin/python tools/record_llamacpp_extras.py --python /tmp/llama/bin/python

Each run is a fresh process using llama.cpp's C API as llama-server does:
- LoRA (common/common.cpp common_init_result): llama_model_load_from_file, llama_adapter_lora_init (prints
  "<buft> LoRA buffer size"), llama_init_from_model (the context reserves its graphs without the adapter), then
  llama_set_adapters_lora and one decode of n_ubatch tokens, which re-reserves the graphs with the LoRA matmuls
  (llama_context::sched_reserve prints the compute buffers again).
- Draft (common/speculative.cpp common_base_params_to_speculative): the draft GGUF loaded as a model, its context with
  the target's n_ctx, slots and batch, and n_outputs_max = n_parallel.
- mmproj (tools/mtmd/mtmd.cpp mtmd_init_from_file): the projector on the CPU, warmup on (clip.cpp prints
  "model size", then "<buft> compute buffer size" of the warmup graph).
Sizes are printed in MiB with two decimals: that is the precision of the recording.
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
import llamacpp_extras_models as xm  # noqa: E402
from record_llamacpp import llama_cpp_build, write_runs  # noqa: E402

COMMON = r"""
import ctypes, json, sys
import llama_cpp as L
L.llama_backend_init()
def ctx_params(s):
    cp = L.llama_context_default_params()
    cp.n_ctx = s.get("n_ctx", 4096)
    cp.n_batch = s.get("n_batch", 2048)
    cp.n_ubatch = s.get("n_ubatch", 512)
    cp.n_seq_max = s.get("n_seq_max", 1)
    cp.kv_unified = s.get("kv_unified", False)
    cp.flash_attn_type = {"auto": -1, "off": 0, "on": 1}[s.get("flash_attn", "auto")]
    if s.get("n_outputs_max"):
        cp.n_outputs_max = s["n_outputs_max"]
    cp.n_threads = cp.n_threads_batch = 2
    return cp
"""

LORA_WORKER = COMMON + r"""
base, lora, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = L.llama_model_load_from_file(base.encode(), L.llama_model_default_params())
ad = L.llama_adapter_lora_init(model, lora.encode())
if not ad:
    print("VRAMCALC_FAIL lora", file=sys.stderr); sys.exit(2)
ctx = L.llama_init_from_model(model, ctx_params(s))
print("VRAMCALC_PHASE with_lora", file=sys.stderr, flush=True)
arr = (L.llama_adapter_lora_p_ctypes * 1)(ad)
sc = (ctypes.c_float * 1)(s.get("scale", 1.0))
L.llama_set_adapters_lora(ctx, arr, 1, sc)
n = min(s.get("n_ubatch", 512), s.get("n_ctx", 4096))
toks = (L.llama_token * n)(*([1] * n))
rc = L.llama_decode(ctx, L.llama_batch_get_one(toks, n))
print("VRAMCALC_DECODE", rc, file=sys.stderr)
"""

DRAFT_WORKER = COMMON + r"""
path, s = sys.argv[1], json.loads(sys.argv[2])
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(path.encode(), mp)
print("VRAMCALC_MODEL_SIZE", L.llama_model_size(model), file=sys.stderr)
ctx = L.llama_init_from_model(model, ctx_params(s))
if not ctx:
    print("VRAMCALC_FAIL context", file=sys.stderr); sys.exit(3)
print("VRAMCALC_N_CTX", L.llama_n_ctx(ctx), file=sys.stderr)
"""

MMPROJ_WORKER = COMMON + r"""
import llama_cpp.mtmd_cpp as M
text, proj, s = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = L.llama_model_load_from_file(text.encode(), L.llama_model_default_params())
mp = M.mtmd_context_params_default()
mp.use_gpu = False
mp.n_threads = 2
mp.warmup = True
mp.flash_attn_type = {"auto": -1, "off": 0, "on": 1}[s.get("flash_attn", "auto")]
c = M.mtmd_init_from_file(proj.encode(), model, mp)
if not c:
    print("VRAMCALC_FAIL mmproj", file=sys.stderr); sys.exit(4)
"""

BUF = re.compile(r"^(\w+):\s+(\S+)\s+(model|KV|RS|output|compute|LoRA) buffer size =\s+([\d.]+) MiB")
CLIP_SIZE = re.compile(r"^(\w+):\s+model size:\s+([\d.]+) MiB")
CLIP_WARMUP = re.compile(r"^(\w+): warmup with image size = (\d+) x (\d+)")
CLIP_FA = re.compile(r"^(\w+): flash attention is (enabled|disabled)")


def _run(python: str, worker: str, *args: str) -> dict:
    p = subprocess.run([python, "-c", worker, *args], capture_output=True, text=True, timeout=600)
    rec: dict = {"buffers": []}
    phase = "load"
    for line in p.stderr.splitlines():
        if line.startswith("VRAMCALC_PHASE"):
            phase = line.split()[1]
        elif m := BUF.match(line):
            rec["buffers"].append({"phase": phase, "where": m.group(1), "buffer": m.group(2), "kind": m.group(3),
                                   "mib": float(m.group(4))})
        elif m := CLIP_SIZE.match(line):
            rec["clip_model_size_mib"] = float(m.group(2))
        elif m := CLIP_WARMUP.match(line):
            rec["warmup_image"] = int(m.group(2))
        elif m := CLIP_FA.match(line):
            rec["clip_flash_attn"] = m.group(2)
        elif line.startswith("VRAMCALC_MODEL_SIZE"):
            rec["model_size_bytes"] = int(line.split()[1])
        elif line.startswith("VRAMCALC_N_CTX"):
            rec["n_ctx"] = int(line.split()[1])
        elif line.startswith("VRAMCALC_DECODE"):
            rec["decode_rc"] = int(line.split()[1])
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("VRAMCALC_")]
        if any(b["phase"] == "with_lora" for b in rec["buffers"]):
            # the re-reservation with the adapter set was printed; the decode of the zero-weight model after it
            # is not part of the recording
            rec["decode_exit"] = p.returncode
        else:
            rec["error"] = lines[-3:] or [f"exit {p.returncode}"]
    return rec


LORA_SETTINGS = [{"n_ctx": 4096}, {"n_ctx": 4096, "flash_attn": "off"}, {"n_ctx": 2048, "n_ubatch": 128},
                 {"n_ctx": 8192, "n_seq_max": 4, "kv_unified": True, "n_outputs_max": 4}]
DRAFT_SETTINGS = [{"n_ctx": 4096, "n_seq_max": 1, "n_outputs_max": 1},
                  {"n_ctx": 8192, "n_seq_max": 4, "kv_unified": True, "n_outputs_max": 4},
                  {"n_ctx": 16384, "n_seq_max": 4, "kv_unified": True, "n_outputs_max": 4, "flash_attn": "off"}]
MMPROJ_SETTINGS = [{"flash_attn": "auto"}, {"flash_attn": "off"}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="the interpreter that has llama_cpp")
    ap.add_argument("--out", default=str(ROOT / "tests/data/llamacpp_extras_runs.json"))
    args = ap.parse_args()
    version, sysinfo = llama_cpp_build(args.python)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for base in xm.BASES:
            xm.write_base(base, t / f"{base}.gguf")
        for name, (base, *_rest) in xm.LORAS.items():
            path = xm.write_lora(name, t / f"{name}.gguf")
            for s in LORA_SETTINGS:
                rec = {"kind": "lora", "lora": name, "base": base, "settings": s,
                       **_run(args.python, LORA_WORKER, str(t / f"{base}.gguf"), str(path), json.dumps(s))}
                runs.append(rec)
                print(name, s, rec.get("error") or rec["buffers"], flush=True)
        for name in xm.DRAFTS:
            path = xm.write_base(name, t / f"{name}.gguf")
            for s in DRAFT_SETTINGS:
                rec = {"kind": "draft", "draft": name, "settings": s,
                       **_run(args.python, DRAFT_WORKER, str(path), json.dumps(s))}
                runs.append(rec)
                print(name, s, rec.get("error") or rec["buffers"], flush=True)
        for name in xm.MMPROJS:
            path = xm.write_mmproj(name, t / f"{name}.gguf")
            for s in MMPROJ_SETTINGS:
                rec = {"kind": "mmproj", "mmproj": name, "text": "llama-a", "settings": s,
                       **_run(args.python, MMPROJ_WORKER, str(t / "llama-a.gguf"), str(path), json.dumps(s))}
                runs.append(rec)
                print(name, s, rec.get("error") or rec, flush=True)
    write_runs(args.out, "buffers printed by a real llama.cpp (CPU backend) for the LoRA adapters, draft model and "
               "multimodal projector of tests/llamacpp_extras_models.py",
               version, sysinfo, "tools/record_llamacpp_extras.py", runs)


if __name__ == "__main__":
    main()
