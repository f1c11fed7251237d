"""Record what a real llama.cpp does with --image-min-tokens / --image-max-tokens / --mtmd-batch-max-tokens on Gemma 3
projectors (the files of tests/llamacpp_extras_models.py), into tests/data/llamacpp_mtmd_limits.json.

Builds tools/mtmd_limits_probe.cpp against a llama.cpp tree and its build, for example the tree llama-cpp-python 0.3.35's
sdist vendors (ggml-org/llama.cpp@4df29be4f, the modelled build), configured CPU only and built to its mtmd target:

    cmake -S vendor/llama.cpp -B /tmp/lcppbuild -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TOOLS=ON \\
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_CURL=OFF \\
        -DLLAMA_OPENSSL=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=ON && ninja -C /tmp/lcppbuild mtmd
    python3 tools/record_mtmd_limits.py --src vendor/llama.cpp --build /tmp/lcppbuild --commit 4df29be

Each run is a fresh process, as llama-server passes the three settings to mtmd_init_from_file (tools/server/
server-context.cpp load_model): clip.cpp prints the warmup image size and its compute buffer; the probe prints what
mtmd_batch_add_chunk answers for putting two image chunks of one grid in one encoding batch.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import llamacpp_extras_models as xm  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from probe_fixture import probe_args, write_probe_fixture  # noqa: E402

# (image_min_tokens, image_max_tokens, batch_max_tokens): llama-server's defaults (-1, -1, 1024), then others
SETTINGS = [(-1, -1, 1024), (64, 4096, 8192), (1, 16, 1), (256, 256, 100000)]
COMPUTE = re.compile(r"^\w+:\s+(\S+) compute buffer size =\s+([\d.]+) MiB")
WARMUP = re.compile(r"warmup with image size = (\d+) x (\d+)")


def main() -> None:
    a = probe_args()
    tmp = Path(tempfile.mkdtemp())
    probe = tmp / "probe"
    lib = next(p.parent for p in a.build.rglob("libmtmd.so"))
    subprocess.run(["g++", "-O1", "-std=c++17", str(ROOT / "tools" / "mtmd_limits_probe.cpp"), "-o", str(probe),
                    f"-I{a.src / 'include'}", f"-I{a.src / 'ggml' / 'include'}", f"-I{a.src / 'tools' / 'mtmd'}",
                    f"-L{lib}", "-lmtmd", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{lib}"], check=True)
    text = xm.write_base("llama-a", tmp / "llama-a.gguf")
    runs = []
    for name in xm.MMPROJS:
        mm = xm.write_mmproj(name, tmp / f"{name}.gguf")
        for lo, hi, bmax in SETTINGS:
            out = subprocess.run([str(probe), str(text), str(mm), str(lo), str(hi), str(bmax)], capture_output=True,
                                 text=True, timeout=600)
            lines = (out.stdout + out.stderr).splitlines()
            assert "PROBE_OK" in out.stdout, out.stdout + out.stderr
            comp = [(m.group(1), float(m.group(2))) for m in map(COMPUTE.match, lines) if m]
            warm = [int(m.group(1)) for m in map(WARMUP.search, lines) if m]
            runs.append({"mmproj": name, "image_min_tokens": lo, "image_max_tokens": hi, "batch_max_tokens": bmax,
                         "warmup_image": warm[-1], "compute_mib": comp[-1][1], "compute_buffer": comp[-1][0],
                         "image_tokens": [int(x.split()[1]) for x in lines if x.startswith("PROBE_IMAGE_TOKENS")],
                         "batch_add": [int(x.split()[1]) for x in lines if x.startswith("PROBE_BATCH_ADD")]})
            print(runs[-1])
    write_probe_fixture(
        "llamacpp_mtmd_limits",
        "a real llama.cpp (CPU backend) run by tools/record_mtmd_limits.py with tools/mtmd_limits_probe.cpp: "
        "mtmd_init_from_file with the settings llama-server passes (image_min_tokens, image_max_tokens, "
        "batch_max_tokens), clip.cpp's printed warmup image size and compute buffer (MiB, two decimals), "
        "and mtmd_batch_add_chunk's answers for two image chunks of one 4x4 grid in one batch "
        "(mtmd_test_create_input_chunks; 0 added, 2 batch too large or no batch support, 3 cannot batch)",
        "tools/record_mtmd_limits.py", a.commit, runs)


if __name__ == "__main__":
    main()
