"""`vramcalc models`: the bundled offline catalog."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tabulate import tabulate

from ..errors import UnknownModelError
from ..sources import catalog
from .common import add_list_parser, matches, nothing_matched, print_json

if TYPE_CHECKING:
    from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    add_list_parser(sub, "models", "list the bundled offline catalog", "only entries whose id or alias contains this, in any case and spelling (qwen3, 70b, gemma-4)", run)


def gather(args: argparse.Namespace) -> list[catalog.CatalogEntry]:
    entries = catalog.entries()
    found = [e for e in entries if matches(args.match, e.repo_id, *e.aliases)]
    if args.match and not found:
        raise UnknownModelError(nothing_matched(args.match, "models", [n for e in entries for n in (e.repo_id, *e.aliases)]))
    return found


def run(args: argparse.Namespace) -> int:
    items = gather(args)
    if args.json:
        print_json([e.model_dump(mode="json") for e in items], sort_keys=False)
        return 0
    rows = [[e.repo_id, ", ".join(e.aliases[:2]), "partial" if e.partial else "full"] for e in items]
    print(tabulate(rows, headers=["model", "aliases", "config copy"], tablefmt="simple"))
    return 0
