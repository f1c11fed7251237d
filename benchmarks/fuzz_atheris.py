"""Coverage-guided fuzzing (atheris, libFuzzer) of the three model parsers: the GGUF header with
the ModelSpec built from its metadata, the safetensors header, and config.json (the bytes parsed as
JSON, the ModelSpec built from them, and the plain check of that spec, which must carry no negative
memory term). The only outcomes allowed are a result or vramcalc's own error; anything else is a
crash, which libFuzzer saves and reports.

    python benchmarks/fuzz_atheris.py [SECONDS per target, default 60]     # all targets, a summary
    python benchmarks/fuzz_atheris.py --target gguf|safetensors|config [libFuzzer flags]

Seeds are real headers written by the tests' writers (a Llama GGUF, a Llama safetensors file) and,
for config, real config.json files of the bundled catalog (dense, MoE, MLA, hybrid, SSM, vision).
tests/test_fuzz_parsers.py runs each target for a few thousand executions.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("gguf", "safetensors", "config")
# config seeds: one catalog model per reader family
CONFIG_SEEDS = ("meta-llama__Llama-3.1-8B", "deepseek-ai__DeepSeek-V3", "Qwen__Qwen3-Next-80B-A3B-Thinking",
                "google__gemma-3-4b-it", "openai__gpt-oss-20b", "mistralai__Mamba-Codestral-7B-v0.1",
                "Zyphra__Zamba2-7B", "nvidia__Nemotron-H-8B-Base-8K", "meta-llama__Llama-4-Scout-17B-16E-Instruct")


def _seeds(target: str, folder: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    data = ROOT / "tests" / "data" / "checkpoints" / "llama"
    if target == "config":
        import json

        from vramcalc.sources.catalog import config_of

        for stem in CONFIG_SEEDS:
            repo = json.loads((ROOT / "vramcalc" / "data" / "models" / f"{stem}.json").read_text())["repo_id"]
            (folder / f"{stem}.json").write_text(json.dumps(config_of(repo), indent=1))
    elif target == "gguf":
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

    import importlib

    import vramcalc  # noqa: F401  the package loads from its cached bytecode: an import under atheris' hook is slow

    # then the target's own modules are re-executed instrumented (the modules they import first), so only the code
    # the target runs is traced
    traced = {"gguf": ("vramcalc.sources.validate", "vramcalc.sources.gguf_header", "vramcalc.sources.gguf_spec"),
              "safetensors": ("vramcalc.sources.safetensors_header",),
              "config": ("vramcalc.sources.bounded_json", "vramcalc.sources.validate", "vramcalc.sources.vision",
                         "vramcalc.sources.hf_config", "vramcalc.check")}[target]
    with atheris.instrument_imports(include=list(traced)):
        for name in traced:
            importlib.reload(sys.modules[name])
    from vramcalc.check import check
    from vramcalc.errors import VramcalcError
    from vramcalc.gpus import find_gpu
    from vramcalc.sources.bounded_json import JSONFileError, loads
    from vramcalc.sources.gguf_header import read_header as read_gguf
    from vramcalc.sources.hf_config import spec_from_config
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

    gpu = find_gpu("rtx4090")

    def config(data: bytes) -> None:
        try:
            cfg = loads(data, "fuzz/config.json")
        except JSONFileError:
            return
        try:
            spec = spec_from_config(cfg, model_id="fuzz", source="config:fuzz/config.json", where="fuzz/config.json")
            r = check(spec, gpu, context=4096)
        except VramcalcError:
            return
        terms = [r.weights_bytes, r.kv_bytes, r.state_bytes, r.required_bytes, *(t.bytes for t in r.breakdown)]
        if min(terms) < 0 or (r.fits and r.free_bytes < 0):
            raise AssertionError(f"negative memory term from a spec that read: {terms}, free {r.free_bytes}")

    atheris.Setup([sys.argv[0], *argv], {"gguf": gguf, "safetensors": safetensors, "config": config}[target])
    atheris.Fuzz()


def run(target: str, flags: list[str]) -> dict:
    """One target in a child process; its executions, and the crash (if any) it reported."""
    with tempfile.TemporaryDirectory() as d:
        corpus, seeds = Path(d) / "corpus", Path(d) / "seeds"
        corpus.mkdir()
        seeds.mkdir()
        _seeds(target, seeds)
        p = subprocess.run([sys.executable, __file__, "--target", target, *flags, f"-artifact_prefix={d}/",
                            str(corpus), str(seeds)], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(  # this checkout, installed or not
                               [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])})
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
    for target in TARGETS:
        r = run(target, [f"-max_total_time={seconds}", "-max_len=65536", "-timeout=10", "-rss_limit_mb=2048"])
        verdict = "no crash" if r["exit"] == 0 else f"CRASH (exit {r['exit']})\n{r['tail']}"
        print(f"{target:12s} {r['runs']:>9,} executions in {r['seconds']} s, corpus {r['corpus']} inputs: {verdict}")


if __name__ == "__main__":
    main()
