"""The `vramcalc` command. Exit codes: 0 fits, 1 does not fit, 2 bad input, 3 an internal error (a bug).

Every failure is one line on stderr (at most 500 characters) naming the file, field or flag; with --json,
stdout also carries it as {"error": {"code", "message", "exit_code"}} (docs/schema/error.json).

Each command is a module with its parser (`add_parser`) and its report (`run`); common.py holds
what they share."""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from typing import Callable, Sequence

from .. import __version__
from ..errors import ErrorCode, ErrorDetail, ErrorOutput, VramcalcError, error_code, one_line
from . import check, explain, gpus, models, plan, schema
from .common import EXIT_BAD_INPUT, EXIT_FITS, EXIT_INTERNAL, Parser, UsageExit

COMMANDS = (check, explain, plan, models, schema, gpus)  # in the order `vramcalc --help` lists them


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vramcalc", description="Will this LLM fit on this GPU? Memory before the download.")
    p.add_argument("--debug", action="store_true", help="print the traceback of an internal error")
    p.add_argument("--version", action="version", version=f"vramcalc {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _json_error(code: ErrorCode, message: str, exit_code: int) -> None:
    """--json: the failure as data on stdout (docs/schema/error.json)."""
    out = ErrorOutput(error=ErrorDetail(code=code, message=message, exit_code=exit_code))  # type: ignore[arg-type]
    print(json.dumps(out.model_dump(mode="json"), indent=2, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # a bare `vramcalc`: what it does and how to ask, not an error
        build_parser().print_help()
        return EXIT_FITS
    want_json = "--json" in argv
    if argv[:1] == ["check"] and "--" in argv:  # vramcalc check --gpu SYSTEM -- <the command as it is run>
        from . import check_command

        i = argv.index("--")
        before, words = argv[1:i], argv[i + 1:]
        return _guarded(lambda: check_command.run(before, words)[1], "check", "--json" in before,
                        "--debug" in before)
    try:
        args = build_parser().parse_args(argv)
    except UsageExit as e:  # the parser printed its one line
        if want_json:
            _json_error("input.usage", e.message, EXIT_BAD_INPUT)
        raise
    return _guarded(lambda: int(args.func(args)), args.command, getattr(args, "json", False), args.debug)


def _guarded(run: Callable[[], int], command: str, want_json: bool, debug: bool) -> int:
    """Run a command: bad input is one line (exit 2), a bug one line naming it (exit 3)."""
    try:
        return run()
    except UsageExit as e:
        if want_json:
            _json_error("input.usage", e.message, EXIT_BAD_INPUT)
        raise
    except VramcalcError as e:  # bad input: one line naming what to change
        line = one_line(str(e))
        if not re.search(r"[A-Za-z]{3}", line):  # a bare value ('1', "'x'"): say at least what kind of error
            line = one_line(f"{type(e).__name__}: {line or 'no detail'} (in `vramcalc {command}`)")
        print(f"vramcalc: error: {line}", file=sys.stderr)
        if want_json:
            _json_error(error_code(e), line, EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `vramcalc ... | head`: the reader left; nothing to report
        sys.stderr.close()
        return EXIT_FITS
    except Exception as e:  # a bug in vramcalc, not the input's fault
        if debug:
            traceback.print_exc()
        first = one_line((str(e).strip().splitlines() or [""])[0], 300)
        line = one_line(f"{type(e).__name__}: {first} (a bug in vramcalc: please report it with the command line"
                        + ("" if debug else "; `vramcalc --debug ...` prints the traceback") + ")")
        print(f"vramcalc: internal error: {line}", file=sys.stderr)
        if want_json:
            _json_error("internal.error", line, EXIT_INTERNAL)
        return EXIT_INTERNAL
