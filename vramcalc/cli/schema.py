"""`vramcalc schema`: the JSON Schema of a --json output (published in docs/schema/)."""

from __future__ import annotations

import argparse
import importlib
from typing import TYPE_CHECKING, Any

from .common import print_json

if TYPE_CHECKING:
    from .common import Subparsers

SCHEMAS = {"check": "vramcalc.check:CheckResult", "check-vllm": "vramcalc.vllm.engine:VLLMResult",
           "check-llamacpp": "vramcalc.llamacpp.engine:LlamaResult",
           "check-command": "vramcalc.pasted_command:CommandResult", "plan": "vramcalc.plan:PlanResult",
           "explain": "vramcalc.trace:Explanation", "models": "list of vramcalc.sources.catalog:CatalogEntry",
           "gpus": "list of vramcalc.gpus:GPU", "error": "vramcalc.errors:ErrorOutput"}  # error: --json on a failure


def add_parser(sub: Subparsers) -> None:
    sc = sub.add_parser("schema", help="print the JSON Schema of a --json output")
    sc.add_argument("output", choices=sorted(SCHEMAS), help="the command whose --json output to describe")
    sc.set_defaults(func=run)


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a --json output (published in docs/schema/)."""
    from pydantic import TypeAdapter

    target = SCHEMAS[name]
    many = target.startswith("list of ")  # `models` and `gpus` print a JSON array of entries
    module, cls = target.removeprefix("list of ").split(":")
    model = getattr(importlib.import_module(module), cls)
    return TypeAdapter(list[model]).json_schema() if many else model.model_json_schema()  # type: ignore[valid-type]


def run(args: argparse.Namespace) -> int:
    print_json(json_schema(args.output))
    return 0
