"""`vramcalc gpus`: the GPUs vramcalc knows."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tabulate import tabulate

from ..errors import UnknownGPUError
from ..gpus import GPU, all_gpus, gpu_names
from .common import add_list_parser, gib, matches, nothing_matched, print_json

if TYPE_CHECKING:
    from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    add_list_parser(sub, "gpus", "list known GPUs", "only GPUs whose id, name or chip contains this, in any case and spelling (4090, h100, strix-halo)", run)


def gather(args: argparse.Namespace) -> list[GPU]:
    names = gpu_names()
    found = [g for g in all_gpus() if matches(args.match, *names.get(g.id, (g.id, g.name)))]
    if args.match and not found:
        raise UnknownGPUError(nothing_matched(args.match, "gpus", [n for ns in names.values() for n in ns[:2]]))
    return found


def run(args: argparse.Namespace) -> int:
    items = gather(args)
    if args.json:
        print_json([g.model_dump(mode="json") for g in items], sort_keys=False)
        return 0
    rows = [[g.id, g.name, gib(g.memory_bytes), gib(g.usable_bytes or g.memory_bytes),
             f"{g.memory_bandwidth_gbs:g}" if g.memory_bandwidth_gbs else "", g.compute_capability or "",
             g.verification or ""] for g in items]
    print(tabulate(rows, headers=["id", "name", "GiB", "usable GiB", "GB/s", "cc", "verification"],
                   tablefmt="simple", disable_numparse=True))
    return 0
