"""The `vramcalc` command. Exit codes: 0 fits, 1 does not fit, 2 bad input, 3 an internal error (a bug).

Each command is a module with its parser (`add_parser`) and its report (`run`); common.py holds
what they share."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Sequence

from ..errors import VramcalcError
from . import check, explain, gpus, models, plan, schema
from .common import EXIT_BAD_INPUT, EXIT_FITS, EXIT_INTERNAL, Parser

COMMANDS = (check, explain, plan, models, schema, gpus)  # in the order `vramcalc --help` lists them


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vramcalc", description="Will this LLM fit on this GPU? Memory before the download.")
    p.add_argument("--debug", action="store_true", help="print the traceback of an internal error")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except VramcalcError as e:  # bad input: one line naming what to change
        print(f"vramcalc: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `vramcalc ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return EXIT_FITS
    except Exception as e:  # a bug in vramcalc, not the input's fault
        if args.debug:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"vramcalc: internal error: {type(e).__name__}: {first} (a bug in vramcalc: please report it with the "
              "command line" + ("" if args.debug else "; `vramcalc --debug ...` prints the traceback") + ")",
              file=sys.stderr)
        return EXIT_INTERNAL
