"""What the commands share: the parser, exit codes, argument types and the pieces of their reports."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Protocol

from ..errors import one_line

if TYPE_CHECKING:
    from typing import TypeAlias

    from ..llamacpp.engine import LlamaResult
    from ..vllm.engine import VLLMResult

    Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

GIB = 1024**3
EXIT_FITS, EXIT_NO_FIT, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


class UsageExit(SystemExit):
    """argparse's exit for a command line that does not parse (exit code 2), with its one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_BAD_INPUT)
        self.message = message


class Parser(argparse.ArgumentParser):
    """One-line errors, and no abbreviated options: `-c` is the context, not a prefix of `-ctk`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, exit 2
        line = one_line(f"{message} (see `vramcalc --help`)")
        self._print_message(f"vramcalc: error: {line}\n", sys.stderr)
        raise UsageExit(line)


class Verdict(Protocol):
    """A result that says whether it fits and dumps itself as JSON data (pydantic)."""

    @property
    def fits(self) -> bool: ...

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


def gib(n: int) -> str:
    return f"{n / GIB:.2f}"


ENGINE_SPELLINGS = {"llama.cpp": "llamacpp", "llama-cpp": "llamacpp", "llama_cpp": "llamacpp"}


def engine_name(text: str) -> str:
    """--engine as people write it: llama.cpp and llama-cpp are llamacpp."""
    v = text.strip().lower()
    return ENGINE_SPELLINGS.get(v, v)


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        if text.lower().endswith("k") and text[:-1].isdigit() and len(text) < 20:
            value = int(text[:-1]) * 1024
        else:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {one_line(repr(text), 60)}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {one_line(repr(text), 60)}")
    return value


def bounded_int(limit: int, what: str, minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: an integer from `minimum` (1 or 0) to `limit`, the limit named in the error."""
    def parse(text: str) -> int:
        if minimum == 0 and text.strip() == "0":
            return 0
        value = positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"{value:,} is above the limit of {limit:,} {what} (vramcalc/limits.py)")
        return value
    parse.__name__ = "int"  # argparse names the type in its errors
    return parse


def positive_float(limit: float, what: str) -> Callable[[str], float]:
    """An argparse type: a finite number above 0 and at most `limit`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {one_line(repr(text), 60)}") from None
        if not 0 < value <= limit:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"expected a number above 0 and at most {limit:,} {what} "
                                             f"(vramcalc/limits.py), got {one_line(repr(text), 60)}")
        return value
    parse.__name__ = "float"
    return parse


def host_ram_bytes(args: argparse.Namespace) -> int | None:
    """--ram GiB in bytes; None when not given."""
    return int(args.ram * GIB) if args.ram else None


def exit_code(fits: bool) -> int:
    return EXIT_FITS if fits else EXIT_NO_FIT


def print_json(data: object, sort_keys: bool = True) -> None:
    print(json.dumps(data, indent=2, sort_keys=sort_keys))


def json_out(result: Verdict) -> int:
    """--json: the result as data; the exit code of its verdict."""
    print_json(result.model_dump(mode="json"))
    return exit_code(result.fits)


def add_list_parser(sub: Subparsers, name: str, help: str, match_help: str,
                    run: Callable[[argparse.Namespace], int]) -> None:
    """A listing command (`models`, `gpus`): an optional filter and --json."""
    p = sub.add_parser(name, help=help)
    p.add_argument("match", nargs="?", help=match_help)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _squash(text: str) -> str:
    """A name without case or separators: `Strix Halo`, `strix-halo` and `strixhalo` are one."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def matches(text: str | None, *fields: str) -> bool:
    """`models` and `gpus` filters: no text, or text (any case, spaces, dashes, dots and underscores ignored)
    inside one of the fields (ids, names, aliases)."""
    if not text:
        return True
    key = _squash(text)
    return bool(key) and any(key in _squash(f) for f in fields)


def nothing_matched(text: str, what: str, names: list[str]) -> str:
    """The one line of a `models` / `gpus` filter that matched nothing, with the closest names."""
    import difflib

    query = one_line(text, 60)
    close = difflib.get_close_matches(query.lower(), [n.lower() for n in names], n=3, cutoff=0.4)
    originals = {n.lower(): n for n in names}
    hint = f"; closest: {', '.join(originals[c] for c in close)}" if close else ""
    return f"nothing matches {query!r}{hint} (`vramcalc {what}` lists them all)"


def verdict_out(result: VLLMResult | LlamaResult, yes: str, no: str, command_label: str = "command") -> int:
    """The tail every engine report shares: verdict, the engine's errors, warnings, the command (labelled
    `checked` under a pasted command, which heads the report as the user wrote it)."""
    print(f"verdict {yes if result.fits else no}")
    for e in result.errors:
        print(f"error   {e}")
    for w in result.warnings:
        print(f"warning {w}")
    print(f"{command_label:<7} {result.command}")
    if result.fix:  # the smallest change, re-checked by the engine model, before the planner's other layouts
        print(f"fix     {result.fix}")
        if result.corrected_command:
            print(f"run     {result.corrected_command}")
    elif not result.fits:
        print("fix     no single change found" + ("; other layouts:" if result.alternatives else ""))
    for a in result.alternatives:
        print(f"instead {a}")
    return exit_code(result.fits)
