"""Long fuzzing run of the parsers (GGUF header, safetensors header, config.json, system strings, CLI
arguments): the suite's hypothesis tests with many more examples. Prints the executions and the
outcome. benchmarks/fuzz_atheris.py is the coverage-guided run of the binary headers.

    python benchmarks/fuzz_parsers.py [examples per test, default 20000]
"""

import os
import subprocess
import sys
import time

n = sys.argv[1] if len(sys.argv) > 1 else "20000"
env = {**os.environ, "VRAMCALC_FUZZ_EXAMPLES": n}
t = time.perf_counter()
p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz_parsers.py",
                    "-k", "not coverage_guided", "--hypothesis-show-statistics"], env=env, capture_output=True, text=True)
elapsed = time.perf_counter() - t
runs = [line.strip() for line in p.stdout.splitlines() if "passing" in line or line.startswith("tests/")]
print(p.stdout[-3000:] if p.returncode else "\n".join(runs))
tests = sum(1 for line in p.stdout.splitlines() if "passing" in line)
print(f"up to {n} examples per test, {tests} hypothesis tests, {elapsed:.0f} s, exit {p.returncode}")
