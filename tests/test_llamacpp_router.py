"""llama-server's router mode (no -m, no -hf: tools/server/server.cpp, server-models.cpp at llama.cpp 4df29be).

The router loads no model; each model runs in a child llama-server whose command is the preset's options with the
router's own flags over them (load_models: preset.merge(base_preset)). The oracle for each child is the single-model
check of the same command written by hand (`vramcalc check -- llama-server -m FILE ...`), whose buffers vramcalc
replays exactly on recorded llama.cpp runs; the router's verdict sums the children that run at once, per device."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacpp_models import write_gguf
from vramcalc.cli import main
from vramcalc.errors import InputError
from vramcalc.pasted_command import check_command

GPU = "4090"


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "models"
    d.mkdir()
    write_gguf("qwen3", d / "a.gguf")
    write_gguf("qwen3", d / "b.gguf")
    (d / "mmproj-x.gguf").write_bytes(b"")  # a companion: no model of its own (load_from_models_dir)
    return d, tmp_path / "p.ini"


def _need(res, device: str) -> int:
    return next(d.total_bytes + d.uncertainty_bytes for d in res.result.devices if d.device == device)


def test_each_child_is_the_single_model_check_of_its_command(folder):
    """[*]'s options, the folder's model, its section's, then the router's flags over them; --port and
    --models-max are the router's own (unset_reserved_args). Each child's figures are exactly those of
    `llama-server -m FILE` with those flags, and the load-on-startup ones are summed per device."""
    d, ini = folder
    ini.write_text(f"[*]\nc = 8192\nn-gpu-layers = 2\n[a]\nload-on-startup = true\nngl = 4\n"
                   f"[c]\nmodel = {d / 'b.gguf'}\nctx-size = 2048\nno-kv-offload = true\nflash-attn = off\n")
    res = check_command(f"llama-server --models-dir {d} --models-preset {ini} --port 9 -fa on --models-max 2", GPU)
    rt = res.router
    assert rt is not None and [k.name for k in rt.children] == ["a", "b", "c"]
    oracle = {"a": f"llama-server -m {d / 'a.gguf'} -c 8192 -ngl 4 -fa on",
              "b": f"llama-server -m {d / 'b.gguf'} -c 8192 -ngl 2 -fa on",
              "c": f"llama-server -m {d / 'b.gguf'} -c 2048 -ngl 2 -nkvo -fa on"}
    for k in rt.children:
        alone = check_command(oracle[k.name], GPU)
        assert k.check.result.devices == alone.result.devices, k.name
        assert k.check.result.n_ctx == alone.result.n_ctx and k.check.result.gpu_layers == alone.result.gpu_layers
        assert k.check.fits == alone.fits and k.check.options == alone.options
    assert [k.load_on_startup for k in rt.children] == [True, False, False]
    for dev in rt.devices:
        need = {k.name: _need(k.check, dev.device) for k in rt.children}
        assert dev.startup_bytes == need["a"]
        assert dev.largest_bytes == sum(sorted(need.values())[-2:])  # --models-max 2
    assert res.fits and rt.starts and rt.largest_fit and res.command.startswith("llama-server --models-dir")
    assert [w.code for w in res.warnings] == ["llamacpp.router.fit"] and res.no_effect == ["--port 9"]


def test_models_max_and_startup_sums(folder):
    """Two children of 13 GiB each on a 24 GiB card (-c 1048576, --fit off): either fits alone; the two do not fit
    together, so with load-on-startup on both the router does not start, and with --models-max 2 the two largest
    on-demand models are said not to fit together (--models-max 1: one at a time, which fits); --models-max 0 is
    no limit (every model)."""
    d, ini = folder
    flags = "-c 1048576 -ngl 99 --fit off"
    alone = {n: check_command(f"llama-server -m {d / n}.gguf {flags}", GPU) for n in ("a", "b")}
    assert all(r.fits for r in alone.values())
    ini.write_text("[*]\nload-on-startup = on\n")
    res = check_command(f"llama-server --models-dir {d} --models-preset {ini} {flags}", GPU)
    rt = res.router
    assert rt is not None and [k.load_on_startup for k in rt.children] == [True, True]
    gpu = next(x for x in rt.devices if x.device != "host RAM")
    assert gpu.startup_bytes == _need(alone["a"], gpu.device) + _need(alone["b"], gpu.device) > gpu.available_bytes
    assert not rt.starts and not res.fits and res.fix
    for k in rt.children:
        assert k.check.result.devices == alone[k.name].result.devices
    on_demand = check_command(f"llama-server --models-dir {d} {flags}", GPU)
    assert on_demand.router is not None and on_demand.router.starts and on_demand.fits
    assert not on_demand.router.largest_fit and on_demand.router.models_max == 4
    assert "llamacpp.router.together" in [w.code for w in on_demand.warnings]
    one = check_command(f"llama-server --models-dir {d} --models-max 1 {flags}", GPU).router
    assert one is not None and one.largest_fit
    assert all(x.largest_bytes == max(_need(alone[n], x.device) for n in ("a", "b")) for x in one.devices)
    free = check_command(f"llama-server --models-dir {d} --models-max 0 {flags}", GPU).router
    assert free is not None and not free.largest_fit


def test_refusals_and_the_printed_report(folder, capsys):
    """load_models' refusal of more load-on-startup presets than --models-max, in its words; the CLI prints each
    child's verdict and command and the router's sums."""
    d, ini = folder
    ini.write_text("[*]\nload-on-startup = 1\n")
    with pytest.raises(InputError, match=r"number of models to load on startup \(2\) exceeds models_max \(1\)"):
        check_command(f"llama-server --models-dir {d} --models-preset {ini} --models-max 1", GPU)
    assert main(["check", "--gpu", GPU, "--", "llama-server", "--models-dir", str(d), "-c", "4096"]) == 0
    out = capsys.readouterr().out
    assert "router  llama-server in router mode: no model of its own; 2 models" in out
    assert f"model   a (on demand): fits alone" in out and f"        llama-server --model {d / 'a.gguf'} -c 4096" in out
    assert "device  rtx-4090: load-on-startup 0.00 GiB, the --models-max 4 largest" in out and "verdict STARTS" in out
    any_gpu = check_command(f"llama-server --models-dir {d} -c 4096")  # no --gpu: the smallest reference GPU
    assert any_gpu.router is not None and any_gpu.fits and list(any_gpu.tried_systems.values()) == [True]
