"""The `vramcalc` command. Exit codes: 0 fits, 1 does not fit, 2 bad input.

Each command is a module with its parser (`add_parser`) and its report (`run`); common.py holds
what they share."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import VramcalcError
from . import check, explain, gpus, models, plan, schema
from .common import EXIT_BAD_INPUT, EXIT_FITS, Parser

COMMANDS = (check, explain, plan, models, schema, gpus)  # in the order `vramcalc --help` lists them


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vramcalc", description="Will this LLM fit on this GPU? Memory before the download.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (VramcalcError, ValueError) as e:
        print(f"vramcalc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `vramcalc ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return EXIT_FITS
