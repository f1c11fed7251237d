"""`vllm serve --config FILE`: the YAML file's settings read as flags, where vLLM reads them (vLLM v0.33.0
vllm/utils/argparse_utils.py FlexibleArgumentParser.parse_args, _pull_args_from_config, load_config_file).

- Only a word `--config` on its own pulls the file in (parse_args tests `"--config" in args`); `--config=FILE` is
  parsed as an ordinary option and the file is never read.
- The file's words go after the model (serve's positional one, or the `--model` parse_args moved to the front) and
  before the rest of the command, so a flag on the command line wins. No model on the line and none in the file is
  vLLM's ValueError; so are a name not ending in .yaml / .yml, `--config` with nothing after it, and a second
  `--config` (an AssertionError).
- Each key becomes `--key`: true is the switch, false its `--no-key` spelling where the parser has one (else
  nothing), a list its items (an empty one nothing), a mapping its JSON (json.dumps), anything else str(value).

vramcalc reads the YAML it needs without a YAML library: block mappings (nested too), block lists of scalars,
JSON-compatible flow values ([1, 2], {"a": 1}), quoted and plain scalars resolved as PyYAML's safe_load (YAML
1.1) resolves them. Anchors, tags, block scalars (| >) and several documents are refused as not read.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..errors import InputError, NotModelledError

_BOOL = {"yes": True, "true": True, "on": True, "no": False, "false": False, "off": False}
_INT = re.compile(r"[-+]?(0b[0-1_]+|0x[0-9a-fA-F_]+|0[0-7_]+|0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$")
_SRC = "vllm/utils/argparse_utils.py FlexibleArgumentParser.load_config_file (0.33.0)"


def _not_read(path: str, line: int, why: str) -> NotModelledError:
    return NotModelledError(f"--config {path}: line {line}: {why}, which vramcalc's YAML reader does not read "
                            "(it reads key: value lines, nested mappings, lists and JSON-style [..] / {..} values; "
                            f"{_SRC}); give the setting as a flag instead")


def _scalar(text: str, path: str, line: int) -> Any:
    """A plain or quoted scalar as PyYAML's SafeLoader resolves it (yaml/resolver.py, YAML 1.1)."""
    t = text.strip()
    if not t or t in ("~", "null", "Null", "NULL"):
        return None
    if t[0] in "&*!|>%@`":
        raise _not_read(path, line, f"the value {t!r} (an anchor, alias, tag or block scalar)")
    if t[0] in "[{":
        try:
            return json.loads(t)
        except ValueError:
            raise _not_read(path, line, f"the flow value {t!r} is not JSON") from None
    if t[0] == "'" and t.endswith("'") and len(t) > 1:
        return t[1:-1].replace("''", "'")
    if t[0] == '"' and t.endswith('"') and len(t) > 1:
        try:
            return json.loads(t)
        except ValueError:
            raise _not_read(path, line, f"the quoted value {t!r}") from None
    if t.lower() in _BOOL and t in (t.lower(), t.capitalize(), t.upper()):
        return _BOOL[t.lower()]
    if _INT.match(t):
        s = t.replace("_", "")
        sign = -1 if s[0] == "-" else 1
        s = s.lstrip("+-")
        if s.startswith("0b"):
            return sign * int(s[2:], 2)
        if s.startswith("0x"):
            return sign * int(s[2:], 16)
        if s != "0" and s.startswith("0"):
            return sign * int(s, 8)
        return sign * int(s)
    if _FLOAT.match(t) and any(c.isdigit() for c in t):
        return float(t.replace("_", ""))
    if t.lower() in (".inf", "+.inf"):
        return math.inf
    if t.lower() == "-.inf":
        return -math.inf
    return t


def _strip_comment(line: str) -> str:
    """A `#` after a space (or at the start) begins a comment, outside quotes."""
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"" and (i == 0 or line[i - 1] in " :[{,-"):
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def read_yaml(text: str, path: str = "FILE") -> dict[str, Any]:
    """The file's top-level mapping (an empty file is an empty one)."""
    rows: list[tuple[int, int, str]] = []  # (line number, indent, content)
    for n, raw in enumerate(text.splitlines(), 1):
        if raw.strip() in ("---", "...") and not rows:
            continue
        if raw.strip() in ("---", "..."):
            raise _not_read(path, n, "a second YAML document")
        if "\t" in raw[:len(raw) - len(raw.lstrip())]:
            raise _not_read(path, n, "a tab in the indentation")
        body = _strip_comment(raw)
        if body.strip():
            rows.append((n, len(body) - len(body.lstrip()), body.strip()))
    value, end = _block(rows, 0, rows[0][1] if rows else 0, path)
    if end != len(rows):
        raise _not_read(path, rows[end][0], "indentation that does not match the lines above")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"AttributeError: 'list' object has no attribute 'items' (--config {path}: the file is not "
                         f"a mapping of flags; {_SRC})")
    return value


def _block(rows: list[tuple[int, int, str]], i: int, indent: int, path: str) -> tuple[Any, int]:
    """The mapping or list whose lines start at rows[i] with this indent."""
    if i >= len(rows):
        return None, i
    if rows[i][2].startswith("- ") or rows[i][2] == "-":
        items: list[Any] = []
        while i < len(rows) and rows[i][1] == indent and (rows[i][2].startswith("- ") or rows[i][2] == "-"):
            n, _, body = rows[i]
            item = body[1:].strip()
            if ": " in item or item.endswith(":"):
                raise _not_read(path, n, "a mapping inside a list")
            items.append(_scalar(item, path, n))
            i += 1
        return items, i
    out: dict[str, Any] = {}
    while i < len(rows) and rows[i][1] == indent:
        n, _, body = rows[i]
        m = re.match(r"""("[^"]*"|'[^']*'|[^:'"][^:]*?)\s*:(\s+(.*))?$""", body)
        if not m:
            raise _not_read(path, n, f"{body!r} (not a key: value line)")
        key = m.group(1).strip("'\"")
        rest = (m.group(3) or "").strip()
        i += 1
        if rest:
            out[key] = _scalar(rest, path, n)
        elif i < len(rows) and (rows[i][1] > indent or (rows[i][1] == indent and rows[i][2].startswith("-"))):
            out[key], i = _block(rows, i, rows[i][1], path)
        else:
            out[key] = None
    if i < len(rows) and rows[i][1] > indent:
        raise _not_read(path, rows[i][0], "indentation that does not match the lines above")
    return out, i


def config_words(config: dict[str, Any], options: set[str]) -> list[str]:
    """load_config_file's words for the mapping; options: the parser's option strings (for `--no-key`)."""
    out: list[str] = []
    for key, value in config.items():
        if isinstance(value, bool):
            if value:
                out.append("--" + key)
            elif f"--no-{key}" in options:
                out.append(f"--no-{key}")
        elif isinstance(value, list):
            if value:
                out += ["--" + key, *(_str(x) for x in value)]
        elif isinstance(value, dict):
            out += ["--" + key, json.dumps(value)]
        else:
            out += ["--" + key, _str(value)]
    return out


def _str(v: Any) -> str:
    """str() of a YAML value, as Python writes it (True, None, 0.9)."""
    return str(v)


def pull_config(args: list[str], options: set[str]) -> list[str]:
    """_pull_args_from_config for the words after `vllm serve` (or the API server's module); the file read here."""
    if "--config" not in args:
        return args
    if args.count("--config") > 1:
        raise InputError("AssertionError: More than one config file specified!")
    index = args.index("--config")
    if index == len(args) - 1:
        raise InputError("ValueError: No config file specified! Please check your command-line arguments.")
    path = args[index + 1]
    ext = path.split(".")[-1]
    if ext not in ("yaml", "yml"):
        raise InputError(f"ValueError: Config file must be of a yaml/yml type. {ext} supplied")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise NotModelledError(f"--config {path}: vramcalc cannot read the file here ({type(e).__name__}: "
                               f"{e.strerror or e}); vLLM reads it where it runs and takes its key: value lines as "
                               f"flags before the rest of the command ({_SRC}): run vramcalc where the file is, or "
                               "give its settings as flags") from None
    words = config_words(read_yaml(text, path), options)
    rest = args[:index] + args[index + 2:]
    # parse_args has already moved --model X to the front, as serve's positional model
    for i, a in enumerate(rest):
        if a == "--model" and i + 1 < len(rest):
            rest = [rest[i + 1], *rest[:i], *rest[i + 2:]]
            break
        if a.startswith("--model="):
            rest = [a.removeprefix("--model="), *rest[:i], *rest[i + 1:]]
            break
    if rest and not rest[0].startswith("-"):
        return rest[:1] + words + rest[1:]
    if "--model" not in words:
        raise InputError("ValueError: No model specified! Please specify model either as a positional argument or "
                         "in a config file.")
    return words + rest
