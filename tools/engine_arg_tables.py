"""The engines' own argument tables, for `vramcalc check -- <command>` (vramcalc/pasted_command.py).

Writes vramcalc/data/vllm_serve_args.json and vramcalc/data/llamacpp_args.json. Neither engine is a
dependency of vramcalc; regenerate them here when the modelled release changes:

    # vLLM: the parser `vllm serve` builds (vllm/entrypoints/common/cli_args.py make_arg_parser), read from the
    # release's own code. A throwaway venv: torch (CPU), the vllm wheel --no-deps, and the few modules its
    # import needs (packaging, pydantic, ...).
    VLLM_TARGET_DEVICE=cpu /path/to/venv/bin/python tools/engine_arg_tables.py vllm

    # llama.cpp: common/arg.cpp (each common_arg with its names, value hint, env var and set_examples) and
    # tools/llama-bench/llama-bench.cpp (its own parser), read from a source tree at the modelled build, e.g.
    # the llama.cpp that llama-cpp-python 0.3.35's sdist vendors (ggml-org/llama.cpp@4df29be4f, its CHANGELOG)
    python3 tools/engine_arg_tables.py llamacpp /path/to/llama.cpp 4df29be

The flags' meaning for vramcalc (modelled, no effect, not modelled) is kept apart, in
vramcalc/data/command_flags.json, which tests/test_pasted_commands.py keeps complete against these tables.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "vramcalc" / "data"


def _action_kind(action: argparse.Action) -> str:
    """switch: takes no value (store_true, BooleanOptionalAction's --x / --no-x, help); value: one or more."""
    return "switch" if action.nargs == 0 else "value"


def _lower_snake(convert: Any) -> bool:
    try:
        return bool(convert("Ab-C") == "ab_c")
    except (TypeError, ValueError):
        return False


def vllm_table() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tools"))
    from vllm_oracle import _torchvision_stub  # the venv's torchvision C ops do not load against the CPU torch

    _torchvision_stub()
    import vllm
    import vllm.envs as envs
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    options = []
    for a in parser._actions:
        if not a.option_strings:
            continue
        kind = _action_kind(a)
        nargs = a.nargs if isinstance(a.nargs, (int, str)) or a.nargs is None else str(a.nargs)
        row = {
            "names": sorted(a.option_strings, key=lambda s: (not s.startswith("--"), s)),
            "dest": a.dest,
            "kind": kind,
            "nargs": nargs if kind == "value" else 0,
            "choices": sorted(map(str, a.choices)) if a.choices else None,
        }
        # a value the parser lower-cases with - as _ before it checks the choices (vllm/engine/arg_utils.py
        # EngineArgs.add_cli_args: --moe-backend, --linear-backend, --sparse-indexer-topk-backend)
        if kind == "value" and a.choices and callable(a.type) and _lower_snake(a.type):
            row["lower_snake"] = True
        # spellings the parser takes but leaves out of help (vllm/utils/argparse_utils.py EnableDisableAction:
        # --no-enable-x / --no-disable-x)
        hidden = sorted(k for k, v in parser._option_string_actions.items() if v is a and k not in a.option_strings)
        if hidden:
            row["hidden"] = hidden
        options.append(row)
    return {
        "_source": f"vLLM {vllm.__version__}: the parser of `vllm serve` and `python -m vllm.entrypoints.openai."
                   "api_server` (vllm/entrypoints/common/cli_args.py make_arg_parser: FrontendArgs and "
                   "AsyncEngineArgs.add_cli_args), read from the release's code by tools/engine_arg_tables.py. "
                   "vllm/utils/argparse_utils.py FlexibleArgumentParser: '--a_b' is '--a-b', '--model X' is the "
                   "positional model, -O3 is --optimization-level 3, '--x.y v' sets one key of a JSON option.",
        "version": vllm.__version__,
        "allow_abbrev": bool(parser.allow_abbrev),
        # vllm/envs.py environment_variables: the VLLM_* variables the release reads
        "env": sorted(envs.environment_variables),
        "options": sorted(options, key=lambda o: o["names"][0]),
    }


# ---- llama.cpp ----

def _balanced(src: str, start: int, open_: str = "(", close: str = ")") -> int:
    """Index just past the bracket that closes src[start] (skipping strings, chars and comments)."""
    depth, i = 0, start
    while i < len(src):
        c = src[i]
        if c == '"':
            i += 1
            while src[i] != '"':
                i += 2 if src[i] == "\\" else 1
        elif c == "'":
            i += 1
            while src[i] != "'":
                i += 2 if src[i] == "\\" else 1
        elif src.startswith("//", i):
            i = src.index("\n", i)
        elif src.startswith("/*", i):
            i = src.index("*/", i) + 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced")


def _top_level_args(body: str) -> list[str]:
    """The comma-separated arguments of a call body (without its parentheses)."""
    out, depth, cur, i = [], 0, [], 0
    while i < len(body):
        c = body[i]
        if c in "\"'":
            j = i + 1
            while body[j] != c:
                j += 2 if body[j] == "\\" else 1
            cur.append(body[i:j + 1])
            i = j + 1
            continue
        if body.startswith("//", i):
            i = body.index("\n", i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _strings(expr: str) -> list[str]:
    return re.findall(r'"((?:[^"\\]|\\.)*)"', expr)


def _examples(chain: str, method: str) -> list[str] | None:
    m = re.search(r"\." + method + r"\(\s*\{([^}]*)\}", chain)
    if not m:
        return None
    return [e.strip().removeprefix("LLAMA_EXAMPLE_").lower() for e in m.group(1).split(",") if e.strip()]


def llamacpp_common_args(src: str) -> list[dict[str, Any]]:
    options = []
    for m in re.finditer(r"add_opt\(\s*common_arg\(", src):
        call_start = src.index("(", m.start() + len("add_opt"))
        end = _balanced(src, call_start)  # add_opt( ... )
        inner_start = src.index("(", m.end() - 1)
        inner_end = _balanced(src, inner_start)
        args = _top_level_args(src[inner_start + 1:inner_end - 1])
        chain = src[inner_end:end]
        names = _strings(args[0])
        neg: list[str] = []
        rest = args[1:]
        if rest and rest[0].startswith("{"):
            neg, rest = _strings(rest[0]), rest[1:]
        handler = rest[-1]
        n_values = len(rest) - 2  # value hints before help and handler
        hints = [(_strings(h) or [h])[0] for h in rest[:n_values]]
        kind = "bool" if neg else ("switch" if n_values == 0 else "value")
        value_type = None
        if kind == "value":
            value_type = "int" if re.search(r"\(\s*common_params\s*&\s*\w*\s*,\s*int\b", handler) else "string"
        env = re.search(r'\.set_env\(\s*"([^"]+)"', chain)
        options.append({
            "names": names, "negated": neg, "kind": kind, "values": n_values, "value_hint": hints or None,
            "value_type": value_type, "env": env.group(1) if env else None,
            "examples": _examples(chain, "set_examples") or ["common"],
            "excludes": _examples(chain, "set_excludes") or [],
            "preset_only": ".set_preset_only()" in chain,
        })
    return options


def _programs(o: dict[str, Any], program: str) -> bool:
    # common/arg.cpp common_params_parser_init add_opt: in the program's example or COMMON, and not excluded
    return (program in o["examples"] or "common" in o["examples"]) and program not in o["excludes"]


def llama_bench_args(src: str) -> list[dict[str, Any]]:
    """tools/llama-bench/llama-bench.cpp parse_cmd_params: `arg == "-x" || arg == "--xx"` branches; a branch that
    reads argv[i] after ++i takes a value (a comma-separated list for most)."""
    body = src[src.index("static cmd_params parse_cmd_params"):]
    body = body[:body.index("\n}\n")]
    out = []
    for m in re.finditer(r'(?:if|else if)\s*\(((?:\s*(?:\|\|)?\s*arg\s*==\s*"[^"]+")+)\s*\)\s*\{', body):
        names = re.findall(r'"([^"]+)"', m.group(1))
        block_end = _balanced(body, m.end() - 1, "{", "}")
        block = body[m.end():block_end]
        takes = bool(re.search(r"\+\+i\b", block))
        out.append({"names": names, "kind": "value" if takes else "switch"})
    return out


def llamacpp_table(root: Path, commit: str) -> dict[str, Any]:
    arg_cpp = (root / "common" / "arg.cpp").read_text()
    bench = (root / "tools" / "llama-bench" / "llama-bench.cpp").read_text()
    common = [o for o in llamacpp_common_args(arg_cpp) if not o["preset_only"]]
    programs = {p: sorted({n for o in common if _programs(o, ex) for n in o["names"] + o["negated"]})
                for p, ex in (("llama-server", "server"), ("llama-cli", "cli"))}
    return {
        "_source": f"llama.cpp at commit {commit}: common/arg.cpp common_params_parser_init (each common_arg: names, "
                   "negated names, value hints, env var, set_examples / set_excludes; a program takes an option in its "
                   "example or COMMON and not excluded: llama-server LLAMA_EXAMPLE_SERVER, llama-cli "
                   "LLAMA_EXAMPLE_CLI); tools/llama-bench/llama-bench.cpp parse_cmd_params (its own parser). "
                   "common_params_parse_ex: '--a_b' is '--a-b'; an unknown one is 'error: invalid argument: --foo'. "
                   "Read by tools/engine_arg_tables.py.",
        "commit": commit,
        "options": [{k: v for k, v in o.items() if k != "preset_only"} for o in common],
        "programs": programs,
        "llama_bench": llama_bench_args(bench),
    }


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "vllm":
        table, name = vllm_table(), "vllm_serve_args.json"
    elif len(sys.argv) == 4 and sys.argv[1] == "llamacpp":
        table, name = llamacpp_table(Path(sys.argv[2]), sys.argv[3]), "llamacpp_args.json"
    else:
        print(__doc__, file=sys.stderr)
        return 2
    (DATA / name).write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {DATA / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
