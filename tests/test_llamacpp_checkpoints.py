"""llama-server's context checkpoints and prompt cache (vramcalc/llamacpp/checkpoints.py) against the sizes
real llama-server runs log (tests/data/llamacpp_checkpoint_logs.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vramcalc import check_command, load_model
from vramcalc.gpus import find_gpu
from vramcalc.llamacpp.builds import resolve_build
from vramcalc.llamacpp.checkpoints import checkpoint_bytes
from vramcalc.llamacpp.engine import LlamaOptions, as_llamacpp_runs_it, check_llamacpp

LOGS = json.loads((Path(__file__).parent / "data" / "llamacpp_checkpoint_logs.json").read_text())["logs"]


@pytest.mark.parametrize("log", LOGS, ids=[x["id"] for x in LOGS])
def test_checkpoint_size_is_the_logged_one(log):
    spec = as_llamacpp_runs_it(load_model(log["model"]))
    extra = 0 if resolve_build(log.get("build", "latest")).has(23981) else log["n_ubatch"]
    b = checkpoint_bytes(spec, log["type_k"], log["type_v"], log["n_tokens"], swa_extra_cells=extra)
    assert round(b / 2**20, 3) == log["size_mib"]  # the log prints MiB to 3 decimals


def test_the_server_check_reports_the_logged_checkpoint_for_each_slot():
    # ck03: -np 1, -ctk / -ctv q8_0, a build before PR #23981; the check sizes the checkpoint at the slot's full
    # context, which holds no more sliding-window cells than the logged 16384-token one (window + ubatch)
    log = next(x for x in LOGS if x["id"] == "ck03")
    spec = load_model(log["model"])
    r = check_llamacpp(spec, [find_gpu("rtx-5090"), find_gpu("rtx-4090")],
                       LlamaOptions(ftype="Q8_0", n_ctx=131072, n_parallel=1, type_k="q8_0", type_v="q8_0",
                                    flash_attn="on", build=log["build"]), None, solve=False)
    assert round(r.checkpoint_bytes / 2**20, 3) == log["size_mib"]
    assert r.checkpoints_max_bytes == 32 * r.checkpoint_bytes  # the default -ctxcp at 4df29be, one slot


def test_a_pasted_ctxcp_and_cram_size_the_host_growth_and_warn_where_ram_is_short():
    # ck01's model and -ctxcp 8 on 2x4090 with 24 GiB of RAM: 4 slots x 8 x 149.626 MiB + the 8 GiB prompt cache
    cmd = "llama-server -m Qwen3.6-27B-Q4_K_M.gguf -ngl 99 -c 65536 -np 4 -ctxcp 8"
    r = check_command(cmd, system="2x4090", host_ram_bytes=24 * 2**30).result
    assert round(r.checkpoint_bytes / 2**20, 3) == 149.626
    assert r.checkpoints_max_bytes == 4 * 8 * r.checkpoint_bytes and r.prompt_cache_max_bytes == 8192 * 2**20
    assert r.fits and not any(w.code == "llamacpp.server.host_growth" for w in r.warnings)  # 12.7 GiB: it fits
    short = check_command(cmd.replace("-ctxcp 8", "-ctxcp 32"), system="2x4090", host_ram_bytes=24 * 2**30).result
    w = next(w for w in short.warnings if w.code == "llamacpp.server.host_growth")
    assert short.fits and w.fix is not None and w.fix.startswith("-ctxcp ")  # the start-up verdict holds
    n = int(w.fix.split()[1])
    host = next(d for d in short.devices if d.device == "host RAM")
    left = host.available_bytes - host.total_bytes - host.uncertainty_bytes - 8192 * 2**20
    assert 4 * n * short.checkpoint_bytes <= left < 4 * (n + 1) * short.checkpoint_bytes
    off = check_command(cmd.replace("-ctxcp 8", "-ctxcp 0 -cram 0"), system="2x4090", host_ram_bytes=24 * 2**30).result
    assert off.checkpoint_bytes == 0 and off.prompt_cache_max_bytes == 0


def test_full_attention_models_make_no_checkpoints():
    # server-context.cpp do_checkpoint: only recurrent state or a sliding-window cache without --swa-full
    spec = load_model("meta-llama/Llama-3.1-8B-Instruct")
    r = check_llamacpp(spec, [find_gpu("rtx-4090")], LlamaOptions(ftype="Q4_K_M", n_ctx=8192), None, solve=False)
    assert r.checkpoint_bytes == 0 and r.checkpoints_max_bytes == 0
    gemma = load_model("google/gemma-3-4b-it")
    full = check_llamacpp(gemma, [find_gpu("rtx-4090")], LlamaOptions(ftype="Q4_K_M", n_ctx=8192, swa_full=True),
                          None, solve=False)
    assert full.checkpoint_bytes == 0


def test_other_programs_keep_no_checkpoints():
    spec = load_model("Qwen/Qwen3.6-27B")
    r = check_llamacpp(spec, [find_gpu("rtx-4090")], LlamaOptions(ftype="Q4_K_M", n_ctx=8192, program="llama-cli"),
                       None, solve=False)
    assert r.checkpoint_bytes == 0 and r.prompt_cache_max_bytes == 0
