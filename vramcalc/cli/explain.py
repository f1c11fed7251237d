"""`vramcalc explain`: the formula trace of a check: each term, its inputs and its rule."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..trace import Explanation, TraceTerm
from . import check
from .common import GIB, exit_code, json_out

if TYPE_CHECKING:
    from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    e = sub.add_parser("explain", help="the formula trace of a check: each term, its inputs and its rule")
    check.add_arguments(e)
    e.set_defaults(func=run)


def gather(args: argparse.Namespace) -> Explanation:
    result = check.result_of(check.gather(args))
    return Explanation(fits=result.fits, trace=result.trace, errors=getattr(result, "errors", []))


def run(args: argparse.Namespace) -> int:
    explanation = gather(args)
    return json_out(explanation) if args.json else print_report(explanation)


def _value(t: TraceTerm) -> str:
    if t.unit == "bytes":
        if abs(t.value) >= GIB:
            return f"{t.value / GIB:,.2f} GiB"
        return f"{t.value / 2**20:,.2f} MiB" if abs(t.value) >= 2**20 else f"{int(t.value):,} B"
    return f"{t.value:,g} {t.unit}"


def print_report(explanation: Explanation) -> int:
    trace = explanation.trace
    width = max(len(t.name) for t in trace)
    for t in trace:
        print(f"{t.name:<{width}}  {_value(t)}")
        print(f"{'':<{width}}    = {t.formula}")
        if t.inputs:
            print(f"{'':<{width}}    inputs: " + ", ".join(f"{k}={v}" for k, v in t.inputs.items()))
        if t.source:
            print(f"{'':<{width}}    rule: {t.source}")
    print(f"verdict {'fits' if explanation.fits else 'does not fit'}"
          + "".join(f"\nerror   {e}" for e in explanation.errors))
    return exit_code(explanation.fits)
