"""Same inputs, same JSON, byte for byte; and a check writes no files (catalog and local models)."""

import json
import os
import subprocess
import sys

from conftest import DATA


def _run(args, cwd, home):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(DATA.parent.parent)}
    return subprocess.run([sys.executable, "-m", "vramcalc", *args], capture_output=True, cwd=cwd, env=env, timeout=60)


def test_json_is_byte_identical_across_runs_and_writes_nothing(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    outs = []
    for model in ("deepseek-v3", str(DATA / "checkpoints" / "qwen3_next")):
        runs = [_run(["check", model, "--gpu", "h100-sxm", "--ctx", "4096", "--json"], work, home) for _ in range(2)]
        assert runs[0].returncode in (0, 1) and runs[0].stdout == runs[1].stdout
        outs.append(json.loads(runs[0].stdout))
    assert list(home.rglob("*")) == [] and list(work.rglob("*")) == []
    assert outs[0]["model"]["id"] == "deepseek-ai/DeepSeek-V3"
