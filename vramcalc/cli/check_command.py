"""`vramcalc check [--gpu SYSTEM] [--ram GiB] [--json] -- <command>`: the command as the user runs it (vllm serve ...,
llama-server ..., docker run ...), checked by vramcalc.check_command."""

from __future__ import annotations

import argparse
import shlex
from typing import Sequence

from ..engine_checks import LlamaReport, VLLMReport
from ..errors import InputError
from ..limits import MAX_RAM_GIB
from ..pasted_command import CommandResult, check_command
from ..vllm.engine import VLLMResult
from . import check_llamacpp, check_vllm
from .common import GIB, Parser, exit_code, json_out, positive_float

USAGE = "vramcalc check [--gpu SYSTEM] [--ram GiB] [--json] -- COMMAND (vllm serve ..., llama-server ..., docker run ...)"


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="vramcalc check", usage=USAGE, description="check a command as you run it")
    p.add_argument("--gpu", default=None, help="GPU or system, as `vramcalc check MODEL --gpu` takes it; the "
                                              "command's CUDA_VISIBLE_DEVICES gives the count of one GPU model. "
                                              "Without it: the smallest reference GPU the command starts on")
    p.add_argument("--ram", type=positive_float(MAX_RAM_GIB, "GiB"), default=None, help="host RAM in GiB")
    p.add_argument("--json", action="store_true", help="print the result as JSON (docs/schema/check-command.json)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return p


def command_text(words: Sequence[str]) -> str:
    """The words after --: one quoted string as it is, several joined as the shell would have split them."""
    return words[0] if len(words) == 1 else shlex.join(words)


def run(before: list[str], words: list[str]) -> tuple[argparse.Namespace, int]:
    args = parser().parse_args(before)
    if not words:
        raise InputError("nothing after --: paste the command, e.g. vramcalc check --gpu 2x4090 -- vllm serve MODEL")
    result = check_command(command_text(words), args.gpu, int(args.ram * GIB) if args.ram else None)
    if args.json:
        return args, json_out(result)
    return args, print_report(result)


def print_report(c: CommandResult) -> int:
    print(f"command {c.command}")
    if c.router is None:  # a router's: each child's own (print_router)
        print(f"as      {c.vramcalc_command}")
    refused = [w for w in c.warnings if w.code == "command.engine_refuses"]
    for w in c.warnings:
        if w not in refused:
            print(f"warning {w}")
    for w in refused:
        print(f"refused {w.text}")
        print(f"        the command does not start as written; below: the same command with {w.fix}")
    if c.tried_systems:
        print("tried   " + ", ".join(f"{s}: {'starts' if ok else 'does not start'}" for s, ok in c.tried_systems.items()))
    if c.no_effect:
        print("no effect on memory: " + ", ".join(c.no_effect))
    print()
    if c.router is not None:
        return print_router(c)
    r = c.result
    from ..api import as_system

    if isinstance(r, VLLMResult):
        system = as_system(c.system)
        gpu = min(system.gpus, key=lambda g: g.usable_bytes)
        check_vllm.print_report(VLLMReport(result=r, gpu=gpu, ranks=r.layout.tp * r.layout.pp, command_label="checked"))
    else:
        from ..api import model_source

        n_gpus = 0 if c.system.lower() == "cpu" else len(as_system(c.system).gpus) * as_system(c.system).nodes
        spec = model_source(c.model).spec
        weights = str(c.options.get("quant", "GGUF file")).removeprefix("gguf:")
        check_llamacpp.print_report(LlamaReport(result=r, spec=spec, weights=weights,
                                                n_gpus=n_gpus, n_cpu_moe_asked=int(c.options.get("n_cpu_moe", 0)),
                                                command_label="checked"))
    return exit_code(c.fits)  # the fix: in the result, printed before the other layouts (verdict_out)


def print_router(c: CommandResult) -> int:
    """llama-server in router mode: each child's verdict and command, then each device's sums."""
    rt = c.router
    assert rt is not None
    gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
    cap = f"--models-max {rt.models_max}" if rt.models_max > 0 else "--models-max 0 (no limit)"
    print(f"router  llama-server in router mode: no model of its own; {len(rt.children)} models, each in a child "
          f"llama-server, {cap} at once")
    for k in rt.children:
        used = ", ".join(f"{d.device} {gib(d.total_bytes + d.uncertainty_bytes)}" for d in getattr(k.check.result,
                                                                                                     "devices", []))
        print(f"model   {k.name} ({'load-on-startup' if k.load_on_startup else 'on demand'}): "
              f"{'fits' if k.check.fits else 'DOES NOT FIT'} alone; {used}")
        print(f"        {k.check.command}")
    for d in rt.devices:
        of = f" of {gib(d.available_bytes)}" if d.available_bytes >= 0 else " (not checked: give --ram)"
        print(f"device  {d.device}: load-on-startup {gib(d.startup_bytes)}, the {cap.split(' (')[0]} largest "
              f"{gib(d.largest_bytes)}{of}")
    print(f"verdict {'STARTS' if c.fits else 'DOES NOT START'}" + (f"; fix: {c.fix}" if c.fix else "")
          + ("" if rt.largest_fit else "; the largest models do not fit together (see the warning)"))
    return exit_code(c.fits)
