"""What the llama.cpp probe recorders share (tools/record_mtmd_limits.py, tools/record_spec_limits.py,
tools/record_llamacpp_mtp.py, record_llamacpp_dflash.py, record_llamacpp_eagle3.py): their arguments (the llama.cpp
tree, its CPU build, the commit they are), how a probe's output is read and the fixture they write under tests/data."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# llama.cpp's buffer lines (src/llama-context.cpp, llama-model.cpp, llama-kv-cache.cpp ...), sizes in MiB
BUF = re.compile(r"\s(\w+):\s+(\S+)\s+(model|KV|RS|output|compute) buffer size =\s+([\d.]+) MiB")
PROBE = re.compile(r"^PROBE (.*)$", re.M)


def probe_values(stdout: str) -> dict[str, Any]:
    """The probe's PROBE key=value lines, integers where they are."""
    rec: dict[str, Any] = {}
    for m in PROBE.finditer(stdout):
        for kv in m.group(1).split():
            k, _, v = kv.partition("=")
            rec[k] = int(v) if v.lstrip("-").isdigit() else v
    return rec


def logged_buffers(stderr: str) -> list[dict[str, Any]]:
    """llama.cpp's buffer lines, each with the phase (tools/probe_common.h VRAMCALC_PHASE) it was printed in, 'target'
    before the first marker."""
    out, phase = [], "target"
    for line in stderr.splitlines():
        if line.startswith("VRAMCALC_PHASE"):
            phase = line.split()[1]
        elif m := BUF.search(line):
            out.append({"context": phase, "where": m.group(1), "buffer": m.group(2), "kind": m.group(3),
                        "mib": float(m.group(4))})
    return out


def probe_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, type=Path, help="the llama.cpp source tree")
    ap.add_argument("--build", required=True, type=Path, help="its CPU build (the folder holding the libraries)")
    ap.add_argument("--commit", required=True, help="the llama.cpp commit the tree is")
    return ap.parse_args()


def write_probe_fixture(name: str, source: str, script: str, commit: str, runs: list[dict[str, Any]]) -> None:
    """tests/data/<name>.json: the runs with how they were made."""
    out = ROOT / "tests" / "data" / f"{name}.json"
    out.write_text(json.dumps({"_source": source, "produced_by": script, "llama_cpp_commit": commit, "runs": runs},
                              indent=1) + "\n")


def build_probe(a: argparse.Namespace, probe_source: str, common: tuple[str, ...], link: tuple[str, ...] = ()) -> Path:
    """Compile tools/<probe_source> with the tree's common/<name>.cpp files and its build-info.cpp, linked against the
    CPU build's libllama / libggml (and the extra link flags given); the path of the probe binary (in a fresh
    temporary folder)."""
    tmp = Path(tempfile.mkdtemp())
    lib = next(p.parent for p in a.build.rglob("libllama.so"))
    inc = [f"-I{a.src / d}" for d in ("common", "vendor", "include", "ggml/include")]
    objs = []
    for name in common:
        objs.append(tmp / f"{name}.o")
        subprocess.run(["g++", "-std=c++17", "-O1", "-DNDEBUG", *inc, "-c", str(a.src / "common" / f"{name}.cpp"),
                        "-o", str(objs[-1])], check=True)
    info = next(a.build.rglob("build-info.cpp"))
    objs.append(tmp / "build-info.o")
    subprocess.run(["g++", "-std=c++17", "-O1", *inc, "-c", str(info), "-o", str(objs[-1])], check=True)
    probe = tmp / "probe"
    subprocess.run(["g++", "-std=c++17", "-O1", *inc, str(ROOT / "tools" / probe_source), *map(str, objs),
                    f"-L{lib}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{lib}", *link, "-o", str(probe)], check=True)
    return probe
