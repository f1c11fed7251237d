"""Coverage-guided fuzzing (atheris, libFuzzer) of the binary header parsers: the GGUF header with
the ModelSpec built from its metadata, and the safetensors header. The only outcomes allowed are
a result or vramcalc's own error; anything else is a crash, which libFuzzer saves and reports.

    python benchmarks/fuzz_atheris.py [SECONDS per target, default 60]     # both targets, a summary
    python benchmarks/fuzz_atheris.py --target gguf|safetensors [libFuzzer flags]

Seeds are real headers written by the tests' writers (a Llama GGUF, a Llama safetensors file).
tests/test_fuzz_parsers.py runs each target for a few thousand executions.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _seeds(target: str, folder: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    data = ROOT / "tests" / "data" / "checkpoints" / "llama"
    if target == "gguf":
        from test_gguf_reader import write_gguf

        from vramcalc.sources.hf_config import read_config_file

        p = folder / "seed.gguf"
        write_gguf(read_config_file(data), "Q8_0", p, "llama")
        p.write_bytes(p.read_bytes()[:65536])
    else:
        raw = (data / "model.safetensors").read_bytes()
        n = int.from_bytes(raw[:8], "little")
        (folder / "seed.safetensors").write_bytes(raw[:8 + n])


def _fuzz(target: str, argv: list[str]) -> None:
    import atheris

    import pydantic  # noqa: F401  third-party imports first, left uninstrumented: only vramcalc is traced

    with atheris.instrument_imports(include=["vramcalc"]):
        from vramcalc.errors import VramcalcError
        from vramcalc.sources.gguf_header import read_header as read_gguf
        from vramcalc.sources.gguf_spec import spec_from_gguf
        from vramcalc.sources.safetensors_header import read_header_from

    def gguf(data: bytes) -> None:
        try:
            header, _ = read_gguf(lambda off, n: data[off:off + n], "fuzz.gguf", len(data))
            spec_from_gguf(header, model_id="fuzz", source="gguf:fuzz", where="fuzz.gguf")
        except VramcalcError:
            pass

    def safetensors(data: bytes) -> None:
        try:
            read_header_from(io.BytesIO(data), "fuzz.safetensors", len(data))
        except VramcalcError:
            pass

    atheris.Setup([sys.argv[0], *argv], {"gguf": gguf, "safetensors": safetensors}[target])
    atheris.Fuzz()


def run(target: str, flags: list[str]) -> dict:
    """One target in a child process; its executions, and the crash (if any) it reported."""
    with tempfile.TemporaryDirectory() as d:
        corpus, seeds = Path(d) / "corpus", Path(d) / "seeds"
        corpus.mkdir()
        seeds.mkdir()
        _seeds(target, seeds)
        p = subprocess.run([sys.executable, __file__, "--target", target, *flags, f"-artifact_prefix={d}/",
                            str(corpus), str(seeds)], capture_output=True, text=True, cwd=ROOT)
        runs = re.findall(r"Done (\d+) runs in (\d+) second", p.stderr)
        return {"target": target, "exit": p.returncode, "runs": int(runs[-1][0]) if runs else 0,
                "seconds": int(runs[-1][1]) if runs else 0, "corpus": len(list(corpus.iterdir())),
                "tail": p.stderr[-2500:] if p.returncode else ""}


def main() -> None:
    if "--target" in sys.argv:
        i = sys.argv.index("--target")
        _fuzz(sys.argv[i + 1], sys.argv[1:i] + sys.argv[i + 2:])
        return
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    for target in ("gguf", "safetensors"):
        r = run(target, [f"-max_total_time={seconds}", "-max_len=65536", "-timeout=10", "-rss_limit_mb=2048"])
        verdict = "no crash" if r["exit"] == 0 else f"CRASH (exit {r['exit']})\n{r['tail']}"
        print(f"{target:12s} {r['runs']:>9,} executions in {r['seconds']} s, corpus {r['corpus']} inputs: {verdict}")


if __name__ == "__main__":
    main()
