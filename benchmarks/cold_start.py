"""Cold-start time of `vramcalc models` and `vramcalc check`: a new interpreter each run, as a
user's shell starts it. Prints median and worst of N runs.

    python benchmarks/cold_start.py [N]
"""

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "vramcalc models": ["models"],
    "vramcalc check llama-3.1-8b --gpu rtx4090 --ctx 8192": ["check", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192"],
    "vramcalc check kimi-k2-instruct --gpu h100-sxm --json": ["check", "kimi-k2-instruct", "--gpu", "h100-sxm", "--json"],
    "vramcalc check llama-3.3-70b --engine llamacpp --gpu 4090 --quant gguf:Q4_K_M (partial offload: -ngl and context solved)":
        ["check", "llama-3.3-70b", "--engine", "llamacpp", "--gpu", "4090", "--quant", "gguf:Q4_K_M"],
    "vramcalc check Qwen/Qwen3-Next-80B-A3B-Thinking --engine llamacpp --gpu h100-sxm --quant gguf:Q4_K_M (hybrid replay)":
        ["check", "Qwen/Qwen3-Next-80B-A3B-Thinking", "--engine", "llamacpp", "--gpu", "h100-sxm", "--quant", "gguf:Q4_K_M"],
    "python -c pass (interpreter floor)": None,
}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    for label, args in COMMANDS.items():
        cmd = [sys.executable, "-c", "pass"] if args is None else [sys.executable, "-m", "vramcalc", *args]
        times = []
        for _ in range(n):
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True)
            times.append(time.perf_counter() - t)
            if p.returncode not in (0, 1):
                raise SystemExit(f"{label} failed: {p.stderr.decode()}")
        print(f"{label:60s} median {statistics.median(times) * 1000:7.0f} ms   max {max(times) * 1000:7.0f} ms  (n={n})")


if __name__ == "__main__":
    main()
