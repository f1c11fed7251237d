"""A command as the user runs it: `vllm serve ...`, `python -m vllm.entrypoints.openai.api_server ...`, `docker run ...
vllm/vllm-openai ...`, `llama-server ...`, `llama-cli ...`, `llama-bench ...` (paths such as ./build/bin/llama-server and
the ghcr.io/ggml-org/llama.cpp images too), with leading environment assignments and shell line continuations.

The flags are read with each engine's own argument table at the modelled release (data/vllm_serve_args.json,
data/llamacpp_args.json, written by tools/engine_arg_tables.py) and mean for vramcalc what data/command_flags.json says:
an option field, no effect on memory, an upper bound, or not modelled (a command.not_modelled warning names the flag:
the figures ignore it). A flag the engine does not have is refused in the engine's own words."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import ConfigDict

from .data_files import raw
from .data_models import CommandFlags, LlamaArgs, VllmServeArgs
from .errors import InputError, NotModelledError, VramcalcError
from .llamacpp.engine import LlamaResult
from .messages import Message, error, warning
from .results import Result, Row
from .vllm.engine import VLLMResult
from .vllm.engine import parse_eplb_config
from .vllm.aux_output import parse_aux_output_config
from .vllm.hf_overrides import json_object_arg, parse_hf_overrides
from .vllm.features import config_object
from .vllm.json_flags import FIELDS as JSON_FLAG_FIELDS, read as read_json_flags
from .vllm.quant_config import read as read_quant_config
from .vllm.kv_transfer import parse_kv_transfer_config
from .vllm.spec_decode import parse_speculative_config

Program = Literal["vllm serve", "llama-server", "llama-cli", "llama-bench"]
GPU_ENV = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")
# python -m vllm.entrypoints.openai.api_server (joined: a dotted string literal reads as a message code)
VLLM_API_SERVER = ".".join(("vllm", "entrypoints", "openai", "api_server"))
LLAMA_PROGRAMS = {"llama-server": "llama-server", "llama-cli": "llama-cli", "llama-bench": "llama-bench"}


@lru_cache(maxsize=None)
def vllm_table() -> dict[str, Any]:
    return raw("vllm_serve_args.json", VllmServeArgs)


@lru_cache(maxsize=None)
def llamacpp_table() -> dict[str, Any]:
    return raw("llamacpp_args.json", LlamaArgs)


@lru_cache(maxsize=None)
def flag_classes() -> dict[str, Any]:
    return raw("command_flags.json", CommandFlags)


@dataclass
class Flag:
    """One flag as written, with its values and what it means for vramcalc."""
    name: str  # as the engine reads it (--a_b is --a-b)
    values: list[str]
    klass: str  # modelled, no_effect, upper_bound, not_modelled
    entry: dict[str, Any]
    key: str = ""  # the option's first name (the table's own spelling of it)

    def written(self) -> str:
        return " ".join([self.name, *(shlex.quote(v) for v in self.values)])


@dataclass
class Parsed:
    """What the command asks: the engine, its model, its flags, and what the environment and docker say."""
    program: Program
    engine: Literal["vllm", "llamacpp"]
    model: str | None
    flags: list[Flag]
    env: dict[str, str]
    gpu_count: int | None  # CUDA_VISIBLE_DEVICES, docker --gpus; None: not said
    gpu_count_source: str | None
    engine_version: str | None  # a vllm/vllm-openai image tag that is a modelled release
    prefix: list[str]  # the tokens before the engine's own (env, docker run ..., the program)
    args: list[str]  # the engine's arguments, as written
    notes: list[Message] = field(default_factory=list)
    # the engine's own refusal of the command as written, when a one-word correction makes it parse:
    # (the error, the argument index it is at, the words that replace that argument)
    refusal: tuple[Message, int, list[str]] | None = None


# ---------------------------------------------------------------- the shell line

def split_command(text: str) -> tuple[dict[str, str], list[str]]:
    """Leading NAME=value assignments (and `env NAME=value`) and the words, as a POSIX shell splits them; `\\` line
    continuations joined."""
    text = re.sub(r"\\\r?\n", " ", text.strip())
    try:
        words = shlex.split(text, comments=False)
    except ValueError as e:
        raise InputError(f"the command does not split as a shell line: {e}") from None
    env: dict[str, str] = {}
    while words and (words[0] == "env" or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])):
        w = words.pop(0)
        if w != "env":
            k, _, v = w.partition("=")
            env[k] = v
    if not words:
        raise InputError("no command to check: paste it after --, e.g. vramcalc check --gpu 2x4090 -- vllm serve MODEL")
    return env, words


def _device_count(value: str) -> int:
    """CUDA_VISIBLE_DEVICES=0,1 is two GPUs; an empty value (or -1 first: CUDA stops at an invalid index) none."""
    ids = [x.strip() for x in value.split(",") if x.strip()]
    for i, x in enumerate(ids):
        if x.startswith("-"):
            return i
    return len(ids)


# docker run's options that take a value (docker CLI reference, `docker run --help`)
DOCKER_VALUE = {"-a", "--attach", "--add-host", "--annotation", "--blkio-weight", "--cap-add", "--cap-drop",
                "--cgroup-parent", "--cgroupns", "--cidfile", "--cpu-period", "--cpu-quota", "--cpu-shares", "-c",
                "--cpus", "--cpuset-cpus", "--cpuset-mems", "--device", "--device-cgroup-rule", "--dns",
                "--dns-option", "--dns-search", "--domainname", "--entrypoint", "-e", "--env", "--env-file",
                "--expose", "--gpus", "--group-add", "--health-cmd", "--health-interval", "--health-retries",
                "--health-start-period", "--health-timeout", "-h", "--hostname", "--ip", "--ip6", "--ipc",
                "--isolation", "--kernel-memory", "-l", "--label", "--label-file", "--link", "--log-driver",
                "--log-opt", "--mac-address", "-m", "--memory", "--memory-reservation", "--memory-swap",
                "--memory-swappiness", "--mount", "--name", "--network", "--net", "--network-alias", "--oom-score-adj",
                "--pid", "--pids-limit", "--platform", "-p", "--publish", "--pull", "--restart", "--runtime",
                "--security-opt", "--shm-size", "--stop-signal", "--stop-timeout", "--storage-opt", "--sysctl",
                "--tmpfs", "-u", "--user", "--ulimit", "--userns", "--uts", "-v", "--volume", "--volume-driver",
                "--volumes-from", "-w", "--workdir"}


def _docker(words: list[str], env: dict[str, str]) -> tuple[list[str], list[str], int | None, str]:
    """`docker run [options] IMAGE [args]`: (prefix through the image, the image's args, GPUs, the image)."""
    i = 2 if words[1:2] == ["run"] else 3  # docker run / docker container run
    gpus: int | None = None
    while i < len(words) and words[i].startswith("-"):
        w = words[i]
        name, eq, val = w.partition("=")
        if name in DOCKER_VALUE and not eq:
            val = words[i + 1] if i + 1 < len(words) else ""
            i += 1
        if name in ("-e", "--env") and "=" in val:
            k, _, v = val.partition("=")
            env[k] = v
        if name == "--gpus":
            g = val.strip().strip("'\"")
            m = re.search(r"device=([0-9,\s]+)", g)
            gpus = None if g == "all" else _device_count(m.group(1)) if m else int(g) if g.isdigit() else None
        i += 1
    if i >= len(words):
        raise InputError("docker run: no image in the command")
    return words[:i + 1], words[i + 1:], gpus, words[i]


def parse_command(text: str) -> Parsed:
    env, words = split_command(text)
    prefix: list[str] = []
    gpus: int | None = None
    gpus_from: str | None = None
    version: str | None = None
    notes: list[Message] = []
    program: Program
    # wrappers that run the command as it is: sudo, nice, time, taskset MASK, numactl --opt=...
    while words and PurePosixPath(words[0]).name in ("sudo", "nice", "time", "taskset", "numactl", "nohup"):
        n = 1
        while n < len(words) and words[n].startswith("-"):
            n += 1
        if PurePosixPath(words[0]).name == "taskset" and n < len(words):
            n += 1  # its CPU mask
        prefix, words = prefix + words[:n], words[n:]
    if not words:
        raise InputError("no command to check after the wrapper")
    image_serve: bool | None = None
    if PurePosixPath(words[0]).name in ("docker", "podman", "nerdctl") and words[1:2] in (["run"], ["container"]):
        pre, rest, gpus, image = _docker(words, env)
        gpus_from = "docker --gpus" if gpus is not None else None
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if repo.endswith("vllm/vllm-openai") or repo.endswith("vllm-openai"):
            from .vllm.weights import vllm_rules

            v = tag.removeprefix("v")
            if v in vllm_rules().versions.by_version or re.fullmatch(r"\d+\.\d+\.\d+(\.\d+)?", v):
                version = v  # a release: the engine takes its rules, the nearest lower one's, or refuses it by name
            elif tag and tag != "latest":
                notes.append(warning("command.image_version", f"the image tag {tag!r} is not a modelled vLLM release: "
                                     "checked with the default release"))
            prefix, words, program = prefix + pre, (["serve"] if rest[:1] != ["serve"] else []) + rest, "vllm serve"
            words = ["vllm"] + words
            image_serve = rest[:1] == ["serve"]  # the words the image's own command line has after the image
        elif "llama.cpp" in repo:
            kind = tag.split("-")[0] if tag else "full"
            if kind == "full":  # the full image's entrypoint takes --server / --run / --bench first
                sub = {"--server": "llama-server", "--run": "llama-cli", "--bench": "llama-bench"}.get(rest[0] if rest else "")
                if sub is None:
                    raise InputError(f"{image}: the full image takes --server, --run or --bench first")
                prefix, words = prefix + pre + rest[:1], [sub] + rest[1:]
            else:
                sub = {"server": "llama-server", "light": "llama-cli"}.get(kind)
                if sub is None:
                    raise InputError(f"{image}: not a llama.cpp server or light image")
                prefix, words = prefix + pre, [sub] + rest
        else:
            raise InputError(f"docker image {image!r}: vramcalc reads vllm/vllm-openai and ghcr.io/ggml-org/llama.cpp "
                             "images")
    exe = PurePosixPath(words[0]).name.removesuffix(".exe")
    if exe == "vllm" and words[1:2] == ["serve"]:
        prefix, args, program, engine = prefix + words[:2], words[2:], "vllm serve", "vllm"
        if image_serve is not None:  # written back as the image takes it: no "vllm", "serve" only where it was given
            prefix = prefix[:-2] + (["serve"] if image_serve else [])
    elif re.fullmatch(r"python[0-9.]*", exe) and words[1:3] == ["-m", VLLM_API_SERVER]:
        prefix, args, program, engine = prefix + words[:3], words[3:], "vllm serve", "vllm"
    elif exe in LLAMA_PROGRAMS:
        prefix, args, program, engine = prefix + words[:1], words[1:], LLAMA_PROGRAMS[exe], "llamacpp"  # type: ignore[assignment]
    else:
        raise InputError(f"{words[0]!r}: vramcalc reads vllm serve, python -m vllm.entrypoints.openai.api_server, "
                         "docker run vllm/vllm-openai, llama-server, llama-cli and llama-bench commands")
    for name in GPU_ENV:
        if name in env:
            n = _device_count(env[name])
            if gpus is not None and n != gpus:
                raise InputError(f"{name}={env[name]} ({n} GPUs) and {gpus_from} ({gpus}) disagree")
            gpus, gpus_from = n, f"{name}={env[name]}"
    refusal: tuple[Message, int, list[str]] | None = None
    if engine == "vllm":
        model, flags = _vllm_flags(args)
    else:
        model, flags, refusal = _llama_flags(program, args)
    if engine == "vllm":
        refusal = None
    return Parsed(program=program, engine=engine, model=model, flags=flags, env=env, gpu_count=gpus,  # type: ignore[arg-type]
                  gpu_count_source=gpus_from, engine_version=version, prefix=prefix, args=args, notes=notes,
                  refusal=refusal)


# ---------------------------------------------------------------- vLLM

class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's words, without exiting
        raise _Refused(f"{self.prog}: error: {message}")


class _Record(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        got = getattr(namespace, "_flags", None) or []
        vals = [] if values is None else [values] if isinstance(values, str) else list(values)
        got.append((option_string, vals))
        setattr(namespace, "_flags", got)


def _lower_snake(s: str) -> str:
    return s.lower().replace("-", "_")


@lru_cache(maxsize=1)
def _vllm_parser() -> _Parser:
    t = vllm_table()
    p = _Parser(prog="vllm serve", allow_abbrev=t["allow_abbrev"], add_help=False)
    p.add_argument("model_tag", nargs="?")
    for o in t["options"]:
        nargs = 0 if o["kind"] == "switch" else o["nargs"]
        # lower_snake: vLLM's parser lower-cases the value with - as _ before checking it (EngineArgs.add_cli_args)
        p.add_argument(*o["names"], dest=o["dest"] + "__", action=_Record, nargs=nargs, default=argparse.SUPPRESS,
                       choices=o["choices"] if o["kind"] == "value" and o["nargs"] is None else None,
                       type=_lower_snake if o.get("lower_snake") else str)
    return p


def _flexible(args: list[str]) -> list[str]:
    """vllm/utils/argparse_utils.py FlexibleArgumentParser.parse_args: --model X is the positional model, --a_b is
    --a-b, -O3 is --optimization-level 3; --x.y v (and -cc.y v) sets one key of the JSON option --x, passed as
    --x '{"y": v}' after the other arguments."""
    out: list[str] = []
    dotted: dict[str, dict[str, Any]] = {}  # --x.y v: merged into one JSON value of --x, added at the end
    skip = False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a.startswith("-") and "." in a.partition("=")[0] and not a.startswith("-O"):
            key, eq, val = a.partition("=")
            if not eq:
                val, skip = (args[i + 1] if i + 1 < len(args) else ""), True
            name, *keys = key.split(".")
            name = ("--" + name[2:].replace("_", "-")) if name.startswith("--") else name
            try:
                value: Any = json.loads(val)
            except ValueError:
                value = val
            for k in reversed(keys):
                value = {k: value}
            _merge(dotted.setdefault(name, {}), value)
        elif a.startswith("--"):
            key, eq, val = a.partition("=")
            key = key.replace("_", "-")
            out.append(key + eq + val)
        elif a.startswith("-O") and a != "-O":
            out += ["--optimization-level", a[3:] if a[2:3] == "=" else a[2:]]
        elif a == "-O":
            out.append("--optimization-level")
        else:
            out.append(a)
    for name, value in dotted.items():
        out += [name, json.dumps(value)]
    for i, a in enumerate(out):
        if a == "--model" and i + 1 < len(out):
            return [out[i + 1], *out[:i], *out[i + 2:]]
        if a.startswith("--model="):
            return [a.removeprefix("--model="), *out[:i], *out[i + 1:]]
    return out


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """FlexibleArgumentParser.parse_args recursive_dict_update: nested keys merged, lists extended."""
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        elif isinstance(v, list) and isinstance(into.get(k), list):
            into[k] += v
        else:
            into[k] = v


def _classify(table: dict[str, Any], name: str, canonical: str) -> dict[str, Any]:
    return table.get(name) or table[canonical]


@lru_cache(maxsize=None)
def _llama_negated() -> dict[str, str]:
    """Each negated llama.cpp name -> the option's first negated name (--no-kv-offload -> -nkvo): a negated spelling
    the flag table does not list is classed as that one, not as the option's positive first name."""
    return {n: o["negated"][0] for o in llamacpp_table()["options"] for n in o["negated"]}


def _vllm_flags(args: list[str]) -> tuple[str | None, list[Flag]]:
    from .vllm.config_file import pull_config

    table = vllm_table()["options"]
    hidden = {h: ("--disable-" + h.removeprefix("--no-enable-") if h.startswith("--no-enable-") else
                  "--enable-" + h.removeprefix("--no-disable-"))
              for o in table for h in o.get("hidden", ()) if h.startswith(("--no-enable-", "--no-disable-"))}
    names = {n for o in table for n in o["names"]} | set(hidden)
    args = pull_config(args, names)  # --config FILE: its settings as flags (vramcalc/vllm/config_file.py)
    # EnableDisableAction's hidden --no-enable-x / --no-disable-x: the same as its --disable-x / --enable-x
    # (vllm/utils/argparse_utils.py, 0.33.0)
    try:
        ns = _vllm_parser().parse_args([hidden.get(a, a) for a in _flexible(args)])
    except _Refused as e:
        raise InputError(str(e)) from None
    first = {n: o["names"][0] for o in vllm_table()["options"] for n in o["names"]}
    classes = flag_classes()["vllm"]
    flags = []
    for name, vals in getattr(ns, "_flags", []):
        entry = _classify(classes, name, first[name])
        flags.append(Flag(name=name, values=vals, klass=entry["class"], entry=entry, key=first[name]))
    return ns.model_tag, flags


# ---------------------------------------------------------------- llama.cpp

@lru_cache(maxsize=None)
def _llama_options(program: str) -> dict[str, tuple[str, str, int]]:
    """name -> (the option's first name, kind, values) for the program; llama-bench from its own parser."""
    t = llamacpp_table()
    if program == "llama-bench":
        return {n: (o["names"][0], o["kind"], 1 if o["kind"] == "value" else 0) for o in t["llama_bench"]
                for n in o["names"]}
    names = set(t["programs"][program])
    out = {}
    for o in t["options"]:
        for n in o["names"] + o["negated"]:
            if n in names and n not in out:
                out[n] = (o["names"][0], "switch" if n in o["negated"] or o["kind"] != "value" else "value", o["values"])
    return out


def _llama_flags(program: str, args: list[str]) -> tuple[str | None, list[Flag], tuple[Message, int, list[str]] | None]:
    """common/arg.cpp common_params_parse_ex (4df29be): --a_b is --a-b; an unknown word is 'error: invalid argument';
    a missing value 'expected value for argument'. llama-bench: tools/llama-bench/llama-bench.cpp parse_cmd_params."""
    options = _llama_options(program)
    classes = flag_classes()["llama_bench" if program == "llama-bench" else "llamacpp"]
    flags: list[Flag] = []
    refusal: tuple[Message, int, list[str]] | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            a = a.replace("_", "-")
        if a not in options:
            if program == "llama-bench":  # llama-bench.cpp parse_cmd_params
                raise InputError(f"{program}: error: invalid parameter for argument: {a}")
            raise InputError(f"{program}: error: invalid argument: {a}")
        first, kind, n_values = options[a]
        preset = _classify(classes, a, first).get("expand")
        if preset:  # common/arg.cpp's preset sets these params where it stands; later flags override them
            own, j = [], 0
            while j < len(preset):  # a param the program has no flag for (llama-cli's port) it does not read
                n = 2 if j + 1 < len(preset) and not preset[j + 1].startswith("-") else 1
                if preset[j] in options:
                    own += preset[j:j + n]
                j += n
            args = args[:i] + own + args[i + 1:]
            continue
        vals = args[i + 1:i + 1 + n_values] if kind == "value" else []
        if len(vals) < (n_values if kind == "value" else 0):
            raise InputError(f'{program}: error while handling argument "{a}": expected value for argument')
        if first == "-fa" and program != "llama-bench" and _truthy(vals[0]) is None and vals[0].lower() != "auto":
            # the handler runs as the flag is read (common_params_parse_ex), before any later word
            said = (f'{program}: error while handling argument "{a}": error: unknown value for '
                    f"--flash-attn: '{vals[0]}'")
            if not vals[0].startswith("-") or refusal is not None:
                raise InputError(said)
            # -fa followed by another flag: the switch form of builds before -fa took on|off|auto. That
            # build refuses it; the same command with `-fa on` is what the user meant, and is answered
            refusal = (error("command.engine_refuses", said, fix=f"{a} on"), i, [a, "on"])
            entry = _classify(classes, a, first)
            flags.append(Flag(name=a, values=["on"], klass=entry["class"], entry=entry, key=first))
            i += 1
            continue
        neg = _llama_negated().get(a) if program != "llama-bench" else None
        entry = classes.get(neg) if neg and a not in classes and neg in classes else _classify(classes, a, first)
        if entry["class"] == "refused":  # common/arg.cpp arg_removed: the handler throws as the flag is read
            said = f'{program}: error while handling argument "{a}": {entry["said"]}'
            if refusal is not None:
                raise InputError(said)
            refusal = (error("command.engine_refuses", said, fix=f"{entry['replacement']} {' '.join(vals)}".strip()),
                       i, [entry["replacement"]])
            a, first, _, _ = entry["replacement"], *options[entry["replacement"]]
            entry = _classify(classes, a, first)
        flags.append(Flag(name=a, values=vals, klass=entry["class"], entry=entry, key=first))
        i += 1 + len(vals)
    model = None
    for f in flags:
        if f.entry.get("field") in ("model", "hf_repo", "model_url"):
            model = model or f.values[0]
    return model, flags, refusal


# ---------------------------------------------------------------- the flags as vramcalc's options

def _truthy(v: str) -> bool | None:
    """common/common.cpp is_truthy / is_falsey: on, enabled, true, 1 / off, disabled, false, 0."""
    x = v.strip().lower()
    return True if x in ("on", "enabled", "true", "1") else False if x in ("off", "disabled", "false", "0") else None


def human_int(flag: str, v: str) -> int:
    """vLLM's human-readable integers (vllm/utils/argparse_utils.py human_readable_int, 0.33.0): 32k = 32000, 32K = 32768."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", v.strip())
    if not m:
        raise InputError(f"argument {flag}: invalid int value: {v!r}")
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2)]
    return int(float(m.group(1)) * mult)


def _int(flag: str, v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise InputError(f"argument {flag}: invalid int value: {v!r}") from None


@dataclass
class Reading:
    """The command read as vramcalc's question."""
    engine: Literal["vllm", "llamacpp"]
    model: str
    options: dict[str, Any]  # as vramcalc.check(engine=...) takes them
    no_effect: list[str]
    warnings: list[Message]
    rpc_servers: int = 0
    nnodes: int | None = None  # vLLM --nnodes: the machines the engines span
    dp_local: int | None = None  # vLLM --data-parallel-size-local: the engines on this machine


def _present(p: Parsed) -> set[str]:
    """The flags of the command, as written and by their first names, and its environment's names."""
    return {f.name for f in p.flags} | {f.key for f in p.flags if f.key} | set(p.env)


def _config_keys(f: Flag, warnings: list[Message], version: str | None = None) -> dict[str, Any]:
    """The keys of a JSON-object flag, checked against vLLM's config class at the release (fields_since: the
    release that added a key); each key that changes speed only is warned about as left out of the speed estimate."""
    keys: dict[str, Any] = {}
    for v in f.values:
        keys.update(config_object(f.name, v, f.entry["config_class"], f.entry["fields"], f.entry["fields_source"],
                                  f.entry.get("fields_since"), version))
    speed_keys = f.entry.get("speed_keys") or {}
    for k in sorted(k for k in keys if k in speed_keys):
        warnings.append(warning("command.speed_not_estimated", f"{f.written()}: {k}: {speed_keys[k]}"))
    return keys


def _common(f: Flag, no_effect: list[str], warnings: list[Message], present: set[str] | None = None,
            version: str | None = None) -> bool:
    """A flag that sets nothing: listed, warned about, or refused. True when it sets an option. A no_effect flag
    with only_with acts only beside one of those flags (each not modelled itself): with one, it warns too."""
    if f.klass == "no_effect":
        masters = [m for m in (f.entry.get("only_with") or []) if m in (present or set())]
        if masters:
            warnings.append(warning("command.not_modelled", f"{f.written()}: {f.entry['note']}; with "
                                    f"{', '.join(masters)} it changes memory, and vramcalc does not model it yet: "
                                    "the figures ignore it"))
            return False
        if f.entry.get("fields"):  # a JSON object of a vLLM config class whose keys all leave memory as it is
            _config_keys(f, warnings, version)
        no_effect.append(f.written())
        if f.entry.get("speed"):
            warnings.append(warning("command.speed_not_estimated", f"{f.written()}: {f.entry['speed']}"))
        return False
    if f.klass == "upper_bound":
        if f.values and all(v in (f.entry.get("no_effect_values") or []) for v in f.values):
            no_effect.append(f.written())
            return False
        warnings.append(warning("command.upper_bound", f"{f.written()}: {f.entry['note']}"))
        return False
    if f.klass == "not_modelled":
        if f.values and all(v in (f.entry.get("no_effect_values") or []) for v in f.values):
            no_effect.append(f.written())
            return False
        if f.entry.get("fields"):  # a JSON object of a vLLM config class: its keys checked, the inert ones listed
            keys = _config_keys(f, warnings, version)
            acting = sorted(k for k in keys if k not in (f.entry.get("no_effect_keys") or [])
                            and k not in (f.entry.get("speed_keys") or {}))
            if not acting:
                no_effect.append(f.written())
                return False
            modelled_keys = f.entry.get("modelled_keys") or []
            unmodelled = [k for k in acting if k not in modelled_keys]
            if unmodelled:
                warnings.append(warning("command.not_modelled", f"{f.written()}: {f.entry['note']}; its keys "
                                        f"{', '.join(unmodelled)} change memory in a way vramcalc does not model yet: "
                                        "the figures ignore it"))
            return len(unmodelled) < len(acting)  # its modelled keys are read (the flag's field)
        modelled = f.entry.get("modelled_values") or []
        items = [x for v in f.values for x in v.split(",")]
        if modelled and items and all(x in modelled or x in (f.entry.get("no_effect_values") or []) for x in items):
            return True  # a comma list of values each modelled or of no effect: read as a modelled flag
        # the rest of the command is checked; the verdict is for the command without this flag, and says so
        warnings.append(warning("command.not_modelled", f"{f.written()}: {f.entry['note']}; vramcalc does not "
                                "model it yet: the figures ignore it"))
        return bool(f.entry.get("refusals_read"))  # its option still read, for the engine's refusals of its values
    return True


# ------------------------------------------------ vLLM: data / expert parallelism, nodes, compilation, chunked prefill

PARALLEL_FIELDS = ("data_parallel_size", "data_parallel_size_local", "enable_expert_parallel", "nnodes")
COMPILE_FIELDS = ("optimization_level", "compilation_config", "enable_chunked_prefill")
# CompilationConfig.cudagraph_mode values (vllm/config/compilation.py CUDAGraphMode, v0.33.0): NONE captures no graph,
# which vramcalc checks as --enforce-eager (its CUDA-graph term is 0); FULL_AND_PIECEWISE is -O2's, the default
CUDAGRAPH_DEFAULT = "FULL_AND_PIECEWISE"
# --cudagraph-capture-sizes / --max-cudagraph-capture-size and their CompilationConfig keys: one or the other
# (v0.30.0 vllm/engine/arg_utils.py EngineArgs.create_engine_config)
CUDAGRAPH_FIELDS = ("cudagraph_capture_sizes", "max_cudagraph_capture_size")


def _cc_exclusive(fld: str) -> str:
    return f"ValueError: {fld} and compilation_config.{fld} are mutually exclusive"


def _cc_int(name: str, key: str, x: Any) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise InputError(f"argument {name}: invalid CompilationConfig value: {key} takes integers, got {x!r}")
    return x


def _vllm_parallel_and_compile(f: Flag, fld: str, v: str | None, opts: dict[str, Any], reader: dict[str, Any],
                               no_effect: list[str]) -> None:
    name = f.name
    if fld == "data_parallel_size":
        opts[fld] = _int(name, v or "")
    elif fld in ("data_parallel_size_local", "nnodes"):
        reader[fld] = _int(name, v or "")  # checked against the system (_system)
    elif fld == "enable_expert_parallel":
        opts[fld] = True if f.entry.get("value") is None else f.entry["value"]
    elif fld == "enable_chunked_prefill":
        opts[fld] = True if f.entry.get("value") is None else f.entry["value"]
    elif fld == "optimization_level":
        # vllm/config/vllm.py OPTIMIZATION_LEVEL_00: no compilation (CompilationMode.NONE) and cudagraph_mode NONE,
        # as --enforce-eager sets them (VllmConfig.__post_init__); O3 is O2's settings (OPTIMIZATION_LEVEL_03)
        level = (v or "").strip().upper().removeprefix("O")
        if level == "0":
            opts["enforce_eager"] = True
        elif level in ("2", "3"):
            no_effect.append(f.written())
        else:
            raise NotModelledError(f"{f.written()}: -O1 captures piecewise CUDA graphs only, a graph pool vramcalc "
                                   "does not size (it models -O2's graphs, -O0 / --enforce-eager's none); vramcalc "
                                   "does not model it yet (remove the flag to check the rest)")
    elif fld == "compilation_config":
        try:
            cc = json.loads(v or "")
        except ValueError:
            raise InputError(f"argument {name}: invalid CompilationConfig value: {v!r}") from None
        if not isinstance(cc, dict):
            raise NotModelledError(f"{f.written()}: a compilation level as a number; give -O0 / -O2 or "
                                   "'{\"cudagraph_mode\": ...}'")
        for key in CUDAGRAPH_FIELDS:
            if key in cc:
                if key in opts and key not in reader.get("cc_keys", ()):
                    raise InputError(_cc_exclusive(key))
                val = cc.pop(key)
                if key == "cudagraph_capture_sizes":
                    if not isinstance(val, list):
                        raise InputError(f"argument {name}: invalid CompilationConfig value: {key} takes a list")
                    opts[key] = tuple(_cc_int(name, key, x) for x in val)
                elif val is not None:
                    opts[key] = _cc_int(name, key, val)
                reader.setdefault("cc_keys", set()).add(key)
        mode = str(cc.pop("cudagraph_mode", CUDAGRAPH_DEFAULT)).upper()
        compile_mode = cc.pop("mode", None)
        if cc:
            raise NotModelledError(f"{f.written()}: the compilation keys {', '.join(sorted(cc))} change what vLLM "
                                   "captures or compiles; vramcalc reads cudagraph_mode (NONE or FULL_AND_PIECEWISE) "
                                   "and mode only (remove them to check the rest)")
        if mode == "NONE":
            opts["enforce_eager"] = True
        elif mode != CUDAGRAPH_DEFAULT:
            raise NotModelledError(f"{f.written()}: cudagraph_mode {mode} captures another graph pool than the "
                                   "default FULL_AND_PIECEWISE, which vramcalc does not size; NONE is checked as "
                                   "--enforce-eager (remove the flag to check the rest)")
        elif compile_mode not in (None, 3, "3", "VLLM_COMPILE", "vllm_compile"):
            # without vLLM's compilation, piecewise graphs cannot be captured (vllm/config/compilation.py)
            raise NotModelledError(f"{f.written()}: mode {compile_mode} without cudagraph_mode NONE changes which "
                                   "graphs vLLM captures; vramcalc does not model it yet")


# the KernelConfig backends a flag and a --kernel-config key both set (vllm/engine/arg_utils.py, 0.33.0)
KERNEL_BACKENDS = ("moe_backend", "linear_backend", "sparse_indexer_topk_backend")


def _vllm_reading(p: Parsed) -> Reading:
    opts: dict[str, Any] = {}
    no_effect: list[str] = []
    warnings: list[Message] = []
    reader: dict[str, Any] = {}  # what the command says about the system (nodes, local DP ranks)
    present = _present(p)
    json_flags: list[tuple[str, str, str, list[str]]] = []
    for f in p.flags:
        if f.entry.get("field") in JSON_FLAG_FIELDS:  # read beside the flags they depend on (vllm/json_flags.py)
            json_flags.append((f.entry["field"], f.name, f.written(), f.values))
            continue
        if f.entry.get("config_class") == "QuantizationConfigArgs":  # refused in vLLM's words (vllm/quant_config.py)
            read_quant_config(f.values, p.engine_version)
        if not _common(f, no_effect, warnings, present, p.engine_version):
            continue
        name, v, fld = f.name, (f.values[0] if f.values else None), f.entry["field"]
        if fld in ("tp", "pp", "max_num_seqs", "block_size", "max_loras", "max_lora_rank", "max_cpu_loras",
                   "num_gpu_blocks_override", "decode_context_parallel_size", "mamba_block_size", "ubatch_size",
                   "replayssm_buffer_len", "offload_group_size", "offload_num_in_group", "offload_prefetch_step",
                   "prefill_context_parallel_size"):
            opts[fld] = _int(name, v or "")
        elif fld in CUDAGRAPH_FIELDS:
            if fld in reader.get("cc_keys", ()):
                raise InputError(_cc_exclusive(fld))
            opts[fld] = tuple(_int(name, x) for x in f.values) if fld == "cudagraph_capture_sizes" else \
                _int(name, v or "")
        elif fld in ("max_model_len", "max_num_batched_tokens", "kv_cache_memory_bytes"):
            if fld == "max_model_len" and (v or "").strip() in ("-1", "auto"):
                raise NotModelledError(f"{name} {v}: the longest context that fits, as vLLM finds it at start-up; "
                                       "vramcalc reports it as the largest max_model_len (drop the flag)")
            opts[fld] = human_int(name, v or "")
        elif fld in ("gpu_memory_utilization", "cpu_offload_gb", "mm_ipc_gpu_memory_gb", "kv_offloading_size",
                     "video_pruning_rate"):
            try:
                opts[fld] = float(v or "")
            except ValueError:
                raise InputError(f"argument {name}: invalid float value: {v!r}") from None
        elif fld in ("enforce_eager", "disable_custom_all_reduce", "enable_lora", "fully_sharded_loras",
                     "enable_moe_shared_loras", "enable_mixed_moe_lora_format", "specialize_active_lora",
                     "enable_tower_connector_lora", "language_model_only", "disable_hybrid_kv_cache_manager", "disable_sliding_window",
                     "enable_mm_embeds", "enable_prefix_caching", "enable_return_routed_experts", "enable_dbo", "dcp_q_replicate",
                     "use_replayssm", "enable_extensible_kv_cache", "enable_elastic_ep", "disable_chunked_mm_input"):
            opts[fld] = True if f.entry.get("value") is None else f.entry["value"]
        elif fld in ("kv_cache_dtype_skip_layers", "cpu_offload_params", "offload_params"):  # nargs="+" (vllm/engine/arg_utils.py, 0.33.0)
            opts[fld] = tuple(f.values)
        elif fld == "limit_mm_per_prompt":
            opts[fld] = {**opts.get(fld, {}), **_mm_limits(name, v or "")}
        elif fld == "mm_processor_kwargs":  # JSON, the last one given (vramcalc/vllm/mm_profile.py)
            from .vllm.mm_profile import parse_processor_kwargs

            try:
                opts[fld] = parse_processor_kwargs(v or "")
            except ValueError as e:
                raise InputError(f"argument {name}: {e}") from None
        elif fld == "dtype":
            opts[fld] = None if v == "auto" else v
        elif fld == "monokernel":  # --monokernel / --no-monokernel, the last one given (argparse); vLLM 0.34.0
            # vllm/engine/arg_utils.py create_engine_config only sets KernelConfig.monokernel true from it, so
            # --no-monokernel leaves --kernel-config's monokernel as it is
            reader["monokernel_flag"] = f.entry.get("value", True)
            opts[fld] = bool(reader["monokernel_flag"] or reader.get("kernel_monokernel"))
        elif fld in KERNEL_BACKENDS:  # other than auto it wins over --kernel-config's key, in either order
            # (vllm/engine/arg_utils.py EngineArgs.create_engine_config, 0.33.0)
            if v != "auto":
                opts[fld] = v
                reader[f"{fld}_flag"] = True
            elif not reader.get(f"kernel_{fld}"):
                opts[fld] = None
        elif fld == "kernel_config":  # its backend keys (_common), normalised as KernelConfig does
            # (vllm/config/kernel.py _normalize_moe_backend and its kin: lower case, - as _; null is the default, auto)
            kc = _config_keys(f, warnings, p.engine_version)  # KernelConfig's fields at the release, speed keys said
            if "monokernel" in kc:  # KernelConfig.monokernel, which --monokernel can only set true (arg_utils.py)
                reader["kernel_monokernel"] = bool(kc["monokernel"])
                opts["monokernel"] = bool(reader["kernel_monokernel"] or reader.get("monokernel_flag"))
            if not any(k in (f.entry.get("modelled_keys") or []) for k in kc):  # only speed keys
                no_effect.append(f.written())
            if kc.get("linear_backend_per_quant"):  # linear_backend for the schemes it names
                per = kc["linear_backend_per_quant"]
                if not isinstance(per, dict):
                    raise InputError(f"argument {name}: linear_backend_per_quant: a JSON object of quantization "
                                     f"scheme: linear backend, got {per!r}")
                opts["linear_backend_per_quant"] = {str(q): b.lower().replace("-", "_") if isinstance(b, str) else b
                                                    for q, b in per.items()}
            if "rdna_hybrid_w4a16_prefill_dequant" in kc:  # 'disable' | 'enable', lower case and - as _ first
                mode = kc["rdna_hybrid_w4a16_prefill_dequant"]  # (vllm/config/kernel.py, 0.34.0)
                mode = mode.lower().replace("-", "_") if isinstance(mode, str) else mode
                if mode not in ("disable", "enable"):
                    raise InputError(f"argument {name}: rdna_hybrid_w4a16_prefill_dequant: Input should be 'disable' "
                                     f"or 'enable' (vllm/config/kernel.py RDNAHybridW4A16PrefillDequantMode), got "
                                     f"{kc['rdna_hybrid_w4a16_prefill_dequant']!r}")
                opts["rdna_w4a16_prefill_dequant"] = mode == "enable"
            for kb in KERNEL_BACKENDS:
                if kb in kc and not reader.get(f"{kb}_flag"):
                    mb = kc[kb]
                    mb = mb.lower().replace("-", "_") if isinstance(mb, str) else mb
                    opts[kb] = None if mb in (None, "auto") else str(mb)
                    reader[f"kernel_{kb}"] = opts[kb] is not None
        elif fld in ("kv_cache_dtype", "quantization", "revision", "hf_config_path", "lora_dtype", "mamba_cache_dtype",
                     "mamba_ssm_cache_dtype", "mm_encoder_tp_mode", "performance_mode", "kv_offloading_backend",
                     "mm_encoder_attn_dtype", "model_impl", "runner", "convert", "load_format", "attention_backend",
                     "mm_encoder_attn_backend", "gdn_prefill_backend", "kda_prefill_backend", "mamba_backend", "mamba_ssu_algorithm",
                     "offload_backend", "all2all_backend"):
            opts[fld] = None if fld == "mm_encoder_attn_dtype" and v == "None" else v
        elif fld == "quantization_config":  # the last one, as argparse keeps it (read above, vllm/quant_config.py)
            obj = read_quant_config(f.values, p.engine_version)
            if any(obj.get(k) for k in ("linear", "moe", "ignore", "targets")):
                opts[fld] = f.values[-1]
            else:  # {}: nothing set (resolve_quantization_config returns an empty QuantizationConfigArgs)
                no_effect.append(f.written())
        elif fld == "speculative_config":
            # --speculative-config JSON, its dotted keys, and the --spec-method / --spec-model / --spec-tokens
            # shorthands of vllm/engine/arg_utils.py (command_flags.json key), merged into one config
            key = f.entry.get("key")
            part = {key: _int(name, v or "") if key == "num_speculative_tokens" else v} if key else \
                parse_speculative_config(v or "")
            opts[fld] = {**opts.get(fld, {}), **part}
        elif fld == "enable_eplb":
            opts[fld] = f.entry["value"]
        elif fld == "eplb_config":  # one JSON object; its dotted keys arrive merged as one (_flexible)
            opts[fld] = {**opts.get(fld, {}), **parse_eplb_config(v or "")}
        elif fld == "attention_config":  # one JSON object; its dotted keys arrive merged as one (_flexible)
            opts[fld] = {**opts.get(fld, {}), **json_object_arg(name, v or "", "AttentionConfig fields")}
        elif fld == "kv_transfer_config":  # one JSON object; its dotted keys arrive merged as one (_flexible)
            opts[fld] = {**opts.get(fld, {}), **parse_kv_transfer_config(v or "")}
        elif fld == "aux_output_config":  # one JSON object; its dotted keys arrive merged as one (_flexible)
            opts[fld] = {**opts.get(fld, {}), **parse_aux_output_config(v or "")}
        elif fld == "hf_overrides":  # one JSON object; its dotted keys arrive merged as one (_flexible)
            opts[fld] = {**opts.get(fld, {}), **parse_hf_overrides(v or "")}
        elif fld in PARALLEL_FIELDS + COMPILE_FIELDS:
            _vllm_parallel_and_compile(f, fld, v, opts, reader, no_effect)
        elif fld == "config":  # --config=FILE: parse_args pulls a file in only for the word --config on its own
            warnings.append(warning("vllm.config.not_read", f"{f.written()}: vLLM 0.33 reads a config file only for "
                                    "`--config FILE` as two words (vllm/utils/argparse_utils.py FlexibleArgumentParser"
                                    ".parse_args: '\"--config\" in args'); with `--config=FILE` it parses the name and "
                                    "never reads the file, so its settings are not applied, here or by vLLM",
                                    fix=f"--config {v}"))
        elif fld != "model":
            raise AssertionError(f"command_flags.json: {name} -> {fld} is not read")
    for k, val in p.env.items():
        if k.startswith("VLLM_"):
            entry = flag_classes()["vllm_env"].get(k)
            if entry is None:
                _vllm_env_not_in_table(k, val, p.engine_version, no_effect, warnings)
                continue
            choices = entry.get("choices")
            if choices and (val not in choices if entry.get("case_sensitive", True)
                            else val.lower() not in [c.lower() for c in choices]):
                # vllm/envs.py env_with_choices (v0.34.0): read when vLLM caches its variables at start-up at the latest
                raise InputError(f"ValueError: Invalid value '{val}' for {k}. Valid options: {choices}.")
            f = Flag(name=k, values=[val], klass=entry["class"], entry=entry)
            if entry["class"] == "no_effect" and not entry.get("only_with") and not entry.get("speed"):
                no_effect.append(k)
            elif entry["class"] == "no_effect":  # beside its flags, or with a speed effect: said as _common says it
                n = len(no_effect)
                _common(f, no_effect, warnings, present)
                no_effect[n:] = [k] * (len(no_effect) - n)  # listed by its name, as the others
            elif _common(f, no_effect, warnings, present) and entry["field"] == "pp_layer_partition":
                try:  # vllm/distributed/utils.py get_pp_indices (0.33.0)
                    opts["pp_layer_partition"] = tuple(int(x) for x in val.split(","))
                except ValueError:
                    raise InputError(f"ValueError: Invalid partition string: {val}") from None
            elif entry["class"] == "modelled" and entry["field"] == "dcp_q_replicate":
                try:  # bool(int(os.getenv(...))) (vllm/envs.py, 0.33.0); set, it wins over --dcp-q-replicate
                    opts["dcp_q_replicate"] = bool(int(val))  # (model_executor/models/deepseek_v2.py envs.is_set)
                except ValueError:
                    raise InputError(f"ValueError: invalid literal for int() with base 10: {val!r} ({k})") from None
            elif entry["class"] == "modelled" and entry["field"] == "fp8_moe_requant":
                # vllm/envs.py env_with_choices keeps the case; Fp8Config.get_quant_method compares with "mxfp4"
                opts["fp8_moe_requant"] = val == "mxfp4"
                if val == "mxfp4":  # AITER's MoE kernels set the backend (vLLM 0.34.0 _aiter_ops.py, envs.py)
                    opts["rocm_aiter_moe"] = p.env.get("VLLM_ROCM_USE_AITER", "False").lower() in ("true", "1") and \
                        p.env.get("VLLM_ROCM_USE_AITER_MOE", "True").lower() in ("true", "1")
                else:
                    no_effect.append(k)
            elif entry["class"] == "modelled" and entry["field"] == "reload_mode":
                opts["reload_mode"] = val  # env_with_choices, case-sensitive (vllm/envs.py, 0.34.0)
                if val == "layerwise":
                    no_effect.append(k)
            elif entry["class"] == "modelled" and entry["field"] == "fp8_moe_requant_act":
                if p.env.get("VLLM_FP8_MOE_REQUANT") == "mxfp4":  # read by Fp8BlockExpertsAsMxfp4FusedMoE only
                    opts["fp8_moe_requant_act"] = val.lower()
                else:
                    no_effect.append(k)
            elif entry["class"] == "modelled" and entry["field"] == "mxfp4_emulation_dequant":
                opts["mxfp4_emulation_dequant"] = val.strip().lower() in ("true", "1")  # vllm/envs.py (0.34.0)
                if not opts["mxfp4_emulation_dequant"]:
                    no_effect.append(k)
            elif entry["class"] == "modelled" and entry["field"] == "kv_cache_layout":
                opts["kv_cache_layout"] = val  # env_with_choices (vllm/envs.py, v0.34.0): the eight names checked above
            elif entry["class"] == "modelled" and entry["field"] == "mxfp8_emulation_dequant":
                opts["mxfp8_emulation_dequant"] = val.strip().lower() in ("true", "1")  # vllm/envs.py (0.33.0)
            elif entry["class"] == "modelled" and entry["field"] == "replicate_embed":
                opts["replicate_embed"] = val.strip().lower() in ("1", "true")  # vllm/envs.py (0.33.0)
            elif entry["class"] == "modelled" and entry["field"] == "use_fused_mqa_topk":
                try:  # bool(int(os.getenv(...))) (v0.34.0 vllm/envs.py)
                    opts["use_fused_mqa_topk"] = bool(int(val))
                except ValueError:
                    raise InputError(f"ValueError: invalid literal for int() with base 10: {val!r} ({k})") from None
            elif entry["class"] == "modelled" and entry["field"] in ("flashinfer_workspace_bytes",
                                                                      "sparse_indexer_max_logits_mb",
                                                                      "sparse_indexer_max_decode_logits_mb",
                                                                      "max_tokens_per_expert_fp4_moe"):
                try:  # int(os.getenv(...)) (vllm/envs.py, 0.33.0)
                    opts[entry["field"]] = int(val)
                except ValueError:
                    raise InputError(f"ValueError: invalid literal for int() with base 10: {val!r} ({k})") from None
            elif entry["class"] == "modelled" and entry["field"] == "deepep_buffer_size_mb":
                opts["deepep_buffer_size_mb"] = _int(k, val)  # int(os.getenv(...)) (vllm/envs.py, 0.33.0)
            elif entry["class"] == "modelled" and entry["field"] == "weight_offloading_disable_uva":
                opts[entry["field"]] = bool(_int(k, val))  # bool(int(os.getenv(...))) (vllm/envs.py, 0.33.0)
            elif entry["class"] == "modelled" and entry["field"] == "confidential_compute":
                opts["confidential_compute"] = val == "1"  # forced == "1" (v0.34.0 vllm/platforms/cuda.py)
            elif entry["class"] == "modelled" and entry["field"] == "deepep_force_intra_node":
                opts["deepep_force_intra_node"] = bool(_int(k, val))  # bool(int(os.getenv(...))) (vllm/envs.py)
            elif entry["class"] == "modelled" and entry["field"] in ("humming_online_quant_config",
                                                                      "humming_input_quant_config"):
                opts[entry["field"]] = val  # JSON, read by vllm/humming.py as vLLM reads it (v0.34.0 vllm/envs.py)
                if entry.get("speed"):  # the activation dtype: its memory sized, its speed not estimated
                    warnings.append(warning("command.speed_not_estimated", f"{k}: {entry['speed']}"))
            elif entry["class"] == "modelled":  # VLLM_USE_FLASHINFER_SAMPLER
                opts[entry["field"]] = _truthy(val) if _truthy(val) is not None else bool(_int(k, val))
    if opts.get("fp8_moe_requant"):  # beside it, AITER's switches pick the MXFP4 MoE backend: read, not inert
        no_effect[:] = [n for n in no_effect if n not in ("VLLM_ROCM_USE_AITER", "VLLM_ROCM_USE_AITER_MOE")]
    if json_flags:
        last = {f.name: (f.values[-1] if f.values else None) for f in p.flags}
        jr = read_json_flags(json_flags, opts.get("load_format"), last.get("--safetensors-load-strategy"),
                             last.get("--distributed-executor-backend"), "gdn_prefill_backend" in opts,
                             opts.get("tp", 1) * opts.get("pp", 1) * opts.get("data_parallel_size", 1),
                             last.get("--data-parallel-backend") == "ray")
        opts.update(jr.options)
        no_effect += jr.no_effect
        warnings += jr.warnings
    if p.engine_version:
        opts["engine_version"] = p.engine_version
    if not p.model:
        raise InputError("vllm serve: no model in the command (vllm serve MODEL ...)")
    if "--checkpoint-prepare-on-startup" in present and "--enable-sleep-mode" not in present:
        raise InputError("ValueError: checkpoint_prepare_on_startup requires enable_sleep_mode")  # config/model.py 0.34
    dp, dpl = opts.get("data_parallel_size", 1), reader.get("data_parallel_size_local")
    if dpl is not None and dpl > dp:  # vllm/config/parallel.py ParallelConfig.__post_init__
        raise InputError(f"data_parallel_size_local ({dpl}) must be <= data_parallel_size ({dp})")
    return Reading(engine="vllm", model=p.model, options=opts, no_effect=no_effect, warnings=warnings,
                   nnodes=reader.get("nnodes"), dp_local=dpl)


def _vllm_env_not_in_table(k: str, val: str, engine_version: str | None, no_effect: list[str],
                           warnings: list[Message]) -> None:
    """A VLLM_* variable the table's release does not read. One it removed (command_flags.json vllm_env_removed) is
    refused in its words (vllm/platforms/interface.py Platform.validate_environ, v0.34.0), or listed where it only
    warns; with the image of an earlier release, which read it, warned about as not modelled. Any other has no
    effect: vLLM warns it is unknown (the same function)."""
    from .vllm.weights import _release_key

    table_v = vllm_table()["version"]
    gone = flag_classes()["vllm_env_removed"].get(k)
    own = flag_classes()["vllm_env_model"].get(k)
    if own is not None:  # read by a model module (command_flags.json vllm_env_model): not modelled where it acts
        warnings.append(warning("command.not_modelled", f"{k}={val}: {own['note']}; the figures ignore it"))
    elif gone is None:
        no_effect.append(f"{k} (not a variable of vLLM {table_v})")
    elif engine_version and _release_key(engine_version) < _release_key(table_v):
        warnings.append(warning("command.not_modelled", f"{k} {val}: a variable of vLLM {engine_version}, removed in "
                                f"{table_v}; vramcalc reads {table_v}'s variables and does not model it: the figures "
                                "ignore it"))
    elif val in (gone.get("no_effect_values") or []):
        no_effect.append(f"{k} {val} (removed in vLLM {table_v}, which warns that it is redundant)")
    else:
        raise InputError(f"ValueError: {gone['said'].replace('{value}', val)}")


def _mm_limits(flag: str, v: str) -> dict[str, int]:
    """--limit-mm-per-prompt JSON ('{"image": 2, "video": 0}'; a value may be an object with a count), or one
    modality as --limit-mm-per-prompt.video 0 (read by _flexible as "video=0")."""
    import json

    key, eq, count = v.partition("=")
    if eq and key.isidentifier():
        return {key: _int(f"{flag}.{key}", count)}
    try:
        d = json.loads(v)
    except json.JSONDecodeError:
        raise InputError(f"argument {flag}: not valid JSON: {v[:80]!r}") from None
    if not isinstance(d, dict):
        raise InputError(f"argument {flag}: a JSON object of modality: count, got {v[:80]!r}")
    out = {}
    for k, n in d.items():
        n = n.get("count") if isinstance(n, dict) else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InputError(f"argument {flag}: {k!r} needs a count of 0 or more, got {n!r}")
        out[str(k)] = n
    return out


def _tensor_split(flag: str, v: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in re.split(r"[,/]", v))
    except ValueError:
        raise InputError(f'error while handling argument "{flag}": invalid value {v!r}') from None


def _override_tensor(flag: str, v: str) -> tuple[str, ...]:
    """-ot PATTERN=BUFFER,...: one PATTERN=DEVICE entry each, in order (common/arg.cpp parse_tensor_buffer_overrides)."""
    entries = []
    for part in v.split(","):
        pat, eq, buft = part.rpartition("=")
        if not eq or not pat or not buft:
            raise InputError(f'error while handling argument "{flag}": invalid value')
        entries.append(f"{pat}={buft}")
    return tuple(entries)


def _devices(flag: str, v: str) -> tuple[str, ...]:
    """--device D1,D2 (common/arg.cpp parse_device_list): 'none' alone means no GPU."""
    names = tuple(x.strip() for x in v.split(",") if x.strip())
    if not names:
        raise InputError(f'error while handling argument "{flag}": no devices specified')
    return names


# ------------------------------------------------ llama.cpp: -mu, -lm, --no-op-offload

def _llama_kv_overrides(f: Flag, v: str, opts: dict[str, Any], no_effect: list[str], warnings: list[Message]) -> None:
    """--override-kv KEY=TYPE:VALUE,... (common/arg.cpp, parsed as it is read: common/common.cpp
    string_parse_kv_override). The keys vramcalc reads go to the check, which applies them to the GGUF's metadata
    (sources/gguf_overrides.py); a flag of keys that change no buffer is listed as no effect; others are warned
    about as not modelled, and the figures ignore them."""
    from .sources import gguf_overrides as kvo

    items = [o for o in kvo.parse([v])]
    kinds = {o.item: kvo.classify(o.key) for o in items}
    unread = [i for i, k in kinds.items() if k == "not_modelled"]
    kept = tuple(i for i, k in kinds.items() if k == "modelled")
    if unread:
        warnings.append(warning("command.not_modelled", f"--override-kv {','.join(unread)}: overrides of GGUF "
                                "metadata vramcalc does not read (data/gguf_kv_overrides.json lists those it does, "
                                "src/llama-model-loader.cpp get_key); vramcalc does not model them yet: the figures "
                                "ignore them"))
    elif not kept:
        no_effect.append(f.written())
    if kept:
        opts["kv_overrides"] = opts.get("kv_overrides", ()) + kept


def _llama_model_url_load_offload(f: Flag, fld: str, v: str, opts: dict[str, Any], no_effect: list[str]) -> None:
    """-mu URL: the file it downloads, read by its name as -m is (common/arg.cpp --model-url); -lm MODE
    (common/arg.cpp --load-mode): auto and mmap are the default, none reads the weights into buffers as
    --no-mmap does, mmap+mlock is --mlock; --no-op-offload (src/llama-context.cpp cparams.op_offload)."""
    if fld == "op_offload":
        opts[fld] = True if f.entry.get("value") is None else f.entry["value"]
    elif fld == "load_mode":
        mode = v.strip().lower()
        if mode in ("auto", "mmap"):
            no_effect.append(f.written())
        elif mode == "none":
            opts["no_mmap"] = True
        elif mode == "mmap+mlock":
            opts["mlock"] = True
        elif mode in ("mlock", "dio"):
            raise NotModelledError(f"{f.written()}: this load mode's host buffers are not modelled (mmap, "
                                   "mmap+mlock and none are); vramcalc does not model it yet (remove the flag to "
                                   "check the rest)")
        else:
            raise InputError(f'error while handling argument "{f.name}": invalid value')


# what llama-bench resets before common_fit_params (tools/llama-bench/llama-bench.cpp main, do_fit, 4df29be)
BENCH_FIT_RESETS = ("n_gpu_layers", "tensor_split", "override_tensor", "n_cpu_moe")


def _bench_fit(p: Parsed, bench_fit: dict[str, int], opts: dict[str, Any], no_effect: list[str]) -> None:
    """llama-bench -fitt MiB / -fitc N (tools/llama-bench/llama-bench.cpp main at 4df29be): either one other than its
    default 0 runs common_fit_params with a margin of -fitt MiB on every device (0 with -fitc alone), after setting
    -ngl to the library default (-1), an all-zero tensor split and no tensor overrides (-ot and -ncmoe dropped), and
    the context to -p + -n + -d, which --fit keeps as given (common/fit.cpp: only n_ctx 0 is lowered, so -fitc changes
    nothing else): the layers --fit offloads are vramcalc's -ngl auto under that margin, as llama-server's --fit."""
    for f in p.flags:
        if f.entry.get("field") in BENCH_FIT_RESETS:
            no_effect.append(f.written())
    for k in BENCH_FIT_RESETS:
        opts.pop(k, None)
    opts["fit_target_mib"] = (bench_fit.get("fit_target_mib", 0),)


def _llama_reading(p: Parsed) -> Reading:
    opts: dict[str, Any] = {}
    no_effect: list[str] = []
    warnings: list[Message] = []
    bench = p.program == "llama-bench"
    rpc = 0
    model = hf = hf_file = hf_draft = mmproj_url = docker = None
    bench_ctx = {"n_prompt": [512], "n_gen": [128], "n_depth": [0]}
    fit_off: str | None = None
    fit_args: list[str] = []
    bench_fit: dict[str, int] = {}
    present = _present(p)
    router: dict[str, Flag] = {}
    mtmd: list[Flag] = []
    path_given = False
    for f in p.flags:
        if f.entry.get("field") in ROUTER_FIELDS:  # read once the model is known (_router)
            router[f.entry["field"]] = f
            continue
        if f.entry.get("field") in MTMD_FIELDS:  # read once the projector is known (_mtmd_tokens)
            mtmd.append(f)
            continue
        if f.entry.get("values"):  # a value list the engine checks (--spec-type: common_speculative_types_from_names)
            bad = [x for v in f.values for x in v.split(",") if x not in f.entry["values"]]
            if bad:
                raise InputError(f'{p.program}: error while handling argument "{f.name}": '
                                 f"{f.entry['values_said']}{bad[0]}")
        if not _common(f, no_effect, warnings, present):
            continue
        name, v, fld = f.name, (f.values[0] if f.values else ""), f.entry["field"]
        path_given = path_given or fld == "model"
        vals = v.split(",") if bench and fld not in ("model", "hf_repo", "hf_file", "override_tensor",
                                                          "tensor_split", "devices") else [v]
        if bench and len(vals) > 1 and fld not in ("n_prompt", "n_gen", "n_depth"):
            raise NotModelledError(f"{f.written()}: a sweep over several values; check one value at a time")
        v = vals[0]
        if fld == "model":
            model = v
        elif fld == "hf_repo":
            hf = v
        elif fld == "hf_file":
            hf_file = v
        elif fld == "hf_repo_draft":
            hf_draft = v
        elif fld == "mmproj_url":
            mmproj_url = v
        elif fld == "docker_repo":
            docker = v
        elif fld in ("n_prompt", "n_gen", "n_depth"):
            bench_ctx[fld] = [_int(name, x) for x in vals]
        elif fld == "n_prompt_gen":
            pp_, _, tg = v.partition(",")
            bench_ctx["n_prompt"], bench_ctx["n_gen"] = [_int(name, pp_)], [_int(name, tg or "0")]
        elif fld == "n_ctx":
            n = _int(name, v)
            opts[fld] = None if n == 0 else n  # -c 0: the model's training context
        elif fld == "n_parallel":
            n = _int(name, v)
            if n != -1:  # -np -1: auto, 4 slots with a unified KV cache (tools/server/server-context.cpp)
                opts[fld] = n
        elif fld in ("n_batch", "n_ubatch", "main_gpu", "n_cpu_moe"):
            opts[fld] = _int(name, v)
        elif fld in ("type_k", "type_v"):
            opts[fld] = v
        elif fld == "flash_attn":
            t = _truthy(v)
            if t is None and v.strip().lower() != "auto":
                raise InputError(f"error: unknown value for --flash-attn: '{v}'")
            opts[fld] = "auto" if t is None else ("on" if t else "off")
        elif fld == "n_gpu_layers":
            opts[fld] = v
        elif fld == "split_mode":
            opts[fld] = v
        elif fld == "tensor_split":
            opts[fld] = _tensor_split(name, v)
        elif fld in ("override_tensor", "override_tensor_draft"):
            opts[fld] = opts.get(fld, ()) + _override_tensor(name, v)
        elif fld == "devices":
            opts[fld] = _devices(name, v)
        elif fld == "no_host":  # llama-bench: --no-host <0|1> (tools/llama-bench/llama-bench.cpp)
            opts[fld] = bool(_int(name, v)) if bench else True
        elif fld == "embedding" and bench:  # -embd <0|1> (tools/llama-bench/llama-bench.cpp: cparams.embeddings)
            if _int(name, v):
                opts[fld] = True
            else:
                no_effect.append(f.written())
        elif fld in ("swa_full", "cpu_moe", "mlock", "embedding"):
            opts[fld] = True
        elif fld == "n_ctx_checkpoints":  # <= 0: checkpoints off (server-context.cpp n_ctx_checkpoints > 0)
            opts[fld] = max(0, _int(name, v))
        elif fld == "cache_ram_mib":  # < 0: no size limit (server-context.cpp cache_ram_mib < 0)
            opts[fld] = max(-1, _int(name, v))
        elif fld in ("lora", "lora_scaled"):  # comma lists (parse_csv_row), repeatable
            opts[fld] = opts.get(fld, ()) + tuple(x for x in v.split(",") if x)
        elif fld == "spec_types":  # common/arg.cpp --spec-type: appends; a list holding none is none alone
            types = v.split(",")
            if "none" in types:  # common_speculative_types_from_names: none alone, whatever beside it
                no_effect.append(f.written())
            else:
                opts[fld] = tuple(dict.fromkeys(opts.get(fld, ()) + tuple(types)))
                ngram = [t for t in types if t.startswith("ngram-")]
                if ngram:
                    warnings.append(warning("command.speed_not_estimated", (
                        f"{f.written()}: {', '.join(ngram)} drafts from the text already seen (common/speculative.cpp), "
                        "so its speed-up depends on how much the output repeats the prompt: speed, not in the "
                        "estimate")))
                for how, impl, kinds in (
                        ("drafts a block with -md's DFlash drafter", "dflash", ("draft-dflash", "draft-dspark")),
                        ("drafts with -md's EAGLE-3 head from the target's hidden states", "eagle3",
                         ("draft-eagle3",))):
                    named = [t for t in types if t in kinds]
                    if named:
                        warnings.append(warning("command.speed_not_estimated", (
                            f"{f.written()}: {', '.join(named)} {how} (common/speculative.cpp "
                            f"common_speculative_impl_draft_{impl}): its memory is counted, its speed-up is not in the "
                            "estimate")))
                if "draft-mtp" in types:
                    warnings.append(warning("command.speed_not_estimated", (
                        f"{f.written()}: draft-mtp drafts with the model's own MTP block(s) (common/speculative.cpp "
                        "common_speculative_impl_draft_mtp): its memory is counted, its speed-up is not in the "
                        "estimate")))
        elif fld == "spec_ngram_mod_n_max":
            n = _int(name, v)
            if not 0 <= n <= 1024:
                raise InputError(f'{p.program}: error while handling argument "{name}": ngram n-max must be between '
                                 "0 and 1024 inclusive")
            opts[fld] = n
        elif fld in ("spec_ngram_simple_size_m", "spec_ngram_map_k_size_m", "spec_ngram_map_k4v_size_m"):
            n = _int(name, v)
            if not 1 <= n <= 1024:  # common/arg.cpp --spec-ngram-*-size-m
                raise InputError(f'{p.program}: error while handling argument "{name}": ngram size M must be between '
                                 "1 and 1024 inclusive")
            opts[fld] = n
        elif fld == "control_vectors":  # common/arg.cpp: comma lists (parse_csv_row), repeatable; -scaled FNAME:SCALE
            files = tuple(x for x in v.split(",") if x)
            if f.key == "--control-vector-scaled":
                for item in files:
                    parts = item.split(":")
                    if len(parts) != 2:
                        raise InputError(f'{p.program}: error while handling argument "{name}": control-vector-scaled '
                                         "format: FNAME:SCALE")
                    try:
                        float(parts[1])
                    except ValueError:
                        raise InputError(f'{p.program}: error while handling argument "{name}": stof') from None
            opts[fld] = opts.get(fld, ()) + files
        elif fld == "kv_overrides":
            _llama_kv_overrides(f, v, opts, no_effect, warnings)
        elif fld in ("model_draft", "mmproj", "type_k_draft", "type_v_draft"):
            opts[fld] = v
        elif fld == "n_gpu_layers_draft":
            from .engine_checks import gpu_layers

            opts[fld] = gpu_layers(v)  # auto (None) and -1 are llama.cpp's default: every layer
        elif fld == "device_draft":
            opts[fld] = _devices(name, v)
        elif fld == "draft_max":
            opts[fld] = _int(name, v)
        elif fld in ("no_kv_offload", "no_mmap", "kv_unified", "cpu_repack", "mmproj_offload", "draft_backend_sampling"):
            val = f.entry.get("value")
            if bench:  # llama-bench takes 0 / 1 (-nkvo 1, -mmp 0)
                val = bool(_int(name, v))
                if fld == "no_mmap":  # -mmp is "use mmap": 0 means --no-mmap
                    val = not val
            opts[fld] = True if val is None else val
        elif fld == "op_offload" and bench:  # -nopo 0|1 (tools/llama-bench/llama-bench.cpp: op_offload = !no_op_offload)
            opts[fld] = not bool(_int(name, v))
        elif fld in ("model_url", "load_mode", "op_offload"):
            _llama_model_url_load_offload(f, fld, v, opts, no_effect)
            if fld == "model_url" and not path_given:  # with -m the download goes to -m's path (build_url_tasks)
                model = PurePosixPath(v.split("?", 1)[0]).name
        elif fld in ("fit_target_mib", "fit_min_ctx") and bench:  # -fitt MiB / -fitc N, default 0 each: off
            n = _int(name, v)
            if n < 0:
                raise InputError(f"{p.program}: error: invalid parameter for argument: {name}")
            if n:
                bench_fit[fld] = n
            else:
                no_effect.append(f.written())
        elif fld in ("fit_target_mib", "fit_min_ctx"):  # common/arg.cpp --fit-target: MiB per device, split by , and /
            fit_args.append(f.written())
            if fld == "fit_target_mib":
                opts[fld] = tuple(_int(name, x) for x in re.split(r"[,/]+", v))
            else:
                opts[fld] = _int(name, v)
        elif fld == "pooling":
            if v not in ("none", "mean", "cls", "last", "rank"):  # common/arg.cpp --pooling
                raise InputError(f"{p.program}: error while handling argument \"{name}\": invalid value")
            opts[fld] = v
        elif fld == "rpc_nodes":
            rpc = len([s for s in v.split(",") if s.strip()])
        elif fld == "fit":
            t = _truthy(v)
            if t is None:
                raise InputError(f"{p.program}: error while handling argument \"{name}\": invalid value: '{v}'")
            fit_off = f.written() if not t else None
        else:
            raise AssertionError(f"command_flags.json: {name} -> {fld} is not read")
    for kind in ("simple", "map_k", "map_k4v"):  # a map type's size_m is its n_max only with that --spec-type
        size_m = f"spec_ngram_{kind}_size_m"
        if size_m in opts and f"ngram-{kind.replace('_', '-')}" not in opts.get("spec_types", ()):
            opts.pop(size_m)
            no_effect += [f.written() for f in p.flags if f.entry.get("field") == size_m]
    if fit_off:
        if opts.get("n_gpu_layers") is None or "n_ctx" not in opts:
            raise NotModelledError(f"{fit_off} without both -ngl and -c: llama.cpp's defaults then apply unfitted "
                                   "(-ngl auto, the training context); give -ngl and -c, or drop --fit off")
        no_effect.append(fit_off)
        for k in ("fit_target_mib", "fit_min_ctx"):  # --fit off: common_fit_params does not run (common/common.cpp)
            opts.pop(k, None)
        no_effect += fit_args
    if bench and bench_fit:
        _bench_fit(p, bench_fit, opts, no_effect)
    if bench:
        opts["n_ctx"] = max(bench_ctx["n_prompt"]) + max(bench_ctx["n_gen"]) + max(bench_ctx["n_depth"])
        if not bench_fit:
            opts.setdefault("n_gpu_layers", "all")  # llama-bench's default -ngl -1: every layer
        opts["n_parallel"], opts["kv_unified"] = 1, True
        if opts.get("embedding"):  # test_prompt decodes min(n_batch, tokens) per call, every one an output
            rows = min(opts.get("n_batch", 2048), max(max(bench_ctx["n_prompt"]), max(bench_ctx["n_depth"])))
            opts["n_outputs_run"] = max(1, rows)  # a generation-only run decodes one token at a time
    elif p.program == "llama-cli":
        opts.setdefault("n_parallel", 1)
    if p.program in ("llama-cli", "llama-bench"):
        opts["n_outputs_max"] = opts.get("n_batch", 2048)  # the library default: n_batch logits rows
    if p.program == "llama-server" and "n_parallel" in opts and "kv_unified" not in opts:
        # common/arg.cpp --kv-unified: "default: enabled if number of slots is auto"
        opts["kv_unified"] = False
    if p.program == "llama-server" and not path_given and not hf and (router or docker or model):
        _router(router, docker, model, p.flags, p.prefix)
    no_effect += [f.written() for f in router.values()]  # a model given: no router (tools/server/server.cpp)
    if docker and not hf:  # it replaces -m / -mu's file; -hf's download replaces it in turn (common_models_handler_apply)
        model = _docker_model(docker, p.env, warnings)
    ref = model or hf_file
    if hf:
        ref = f"hf:{hf}" + (f"::{hf_file}" if hf_file else "")
        said = {f.entry.get("field") for f in p.flags} | {f.name for f in p.flags}
        if not said & {"mmproj", "mmproj_url"} and not said & {"--no-mmproj", "--no-mmproj-auto"} and p.program != "llama-bench":
            warnings.append(warning("llamacpp.mmproj.auto", f"-hf {hf}: llama-server also downloads and loads the "
                                    "repo's projector (mmproj) file when it has one (--mmproj-auto is on by default, "
                                    "common/download.cpp find_best_mmproj); its weights and compute buffer are not "
                                    "counted here: give it with --mmproj FILE, or pass --no-mmproj"))
    if hf_draft:
        types = [x for f in p.flags if f.key == "--spec-type" for v in f.values for x in v.split(",")]
        _hf_draft(hf_draft, opts, warnings, types if any(f.key == "--spec-type" for f in p.flags) else None)
    if mmproj_url:
        _mmproj_url(mmproj_url, p.env, opts, warnings)
    auto_mmproj = bool(hf) and not mmproj_url and not {"--no-mmproj", "--no-mmproj-auto"} & {f.name for f in p.flags}
    for f in mtmd:
        _mtmd_tokens(f, opts.get("mmproj"), auto_mmproj, no_effect, warnings)
    if not ref:
        raise InputError(f"{p.program}: no model in the command (-m FILE.gguf or -hf REPO[:QUANT])")
    return Reading(engine="llamacpp", model=ref, options=opts, no_effect=no_effect, warnings=warnings, rpc_servers=rpc)


SIDECAR_TYPES = ("draft-mtp", "draft-eagle3", "draft-dflash", "draft-dspark")


def _hf_draft(repo: str, opts: dict[str, Any], warnings: list[Message], types: list[str] | None) -> None:
    """--spec-draft-hf / -hfd REPO[:QUANT] (common/arg.cpp at 4df29be): the draft's hf_repo; -md FILE beside it is the
    draft's hf_file, the repo's file to take (the -md handler sets both path and hf_file, and
    common_models_handler_apply points the path at the download). Read as hf:REPO[::FILE] (llamacpp/extras.py
    _hf_draft). Without -md, common_models_handler_init also looks for the repo's sidecars: every kind (mtp-, eagle3-,
    dflash-, dspark-) with no --spec-type (spec_types_is_default: the list is exactly [none]; any --spec-type appends
    to it), else those of the draft types named; one the repo ships is loaded in place of its model file."""
    file = opts.get("model_draft")
    opts["model_draft"] = f"hf:{repo}" + (f"::{file}" if file else "")
    kinds = [t.removeprefix("draft-") for t in (SIDECAR_TYPES if types is None else
                                                [t for t in SIDECAR_TYPES if t in types])]
    if not file and kinds:
        warnings.append(warning("llamacpp.draft.sidecar", (
            f"-hfd {repo} without -md: when the repo ships a {' / '.join(k + '-' for k in kinds)} sidecar file, "
            "llama.cpp loads that as the draft in place of the repo's model file" + (
                " and sets the speculative type from it" if types is None else "")
            + " (common/arg.cpp common_models_handler_init / _apply); the check counts the model file: name it with "
            "-md FILE to be sure")))


def llama_cache_file(name: str, env: dict[str, str]) -> str:
    """common/common.cpp fs_get_cache_file at 4df29be (Linux): $LLAMA_CACHE, else $XDG_CACHE_HOME/llama.cpp, else
    $HOME/.cache/llama.cpp, and the file's name in it; the command's own environment first, then this one's."""
    get = lambda k: env.get(k) or os.environ.get(k) or ""  # noqa: E731
    d = get("LLAMA_CACHE") or (str(Path(get("XDG_CACHE_HOME")) / "llama.cpp") if get("XDG_CACHE_HOME") else
                               str(Path(get("HOME") or Path.home()) / ".cache" / "llama.cpp"))
    return str(Path(d) / name)


def _mmproj_url(url: str, env: dict[str, str], opts: dict[str, Any], warnings: list[Message]) -> None:
    """-mmu / --mmproj-url URL (common/arg.cpp at 4df29be: the projector's url; it turns the -hf repo's projector off,
    common_models_handler_init download_mmproj): common_models_handler_apply downloads it to --mmproj's path, else to
    the cache file of the URL's last part (get_default_local_path: before any ? or #), and the projector is loaded
    from there. Read from that file when it is here; else the projector is not counted, and said so."""
    path = opts.get("mmproj") or llama_cache_file(url.split("#")[0].split("?")[0].rstrip("/").split("/")[-1], env)
    if Path(path).expanduser().is_file():
        opts["mmproj"] = path
        return
    opts.pop("mmproj", None)
    warnings.append(warning("llamacpp.mmproj.url", (
        f"-mmu {url}: llama.cpp downloads the projector to {path} and loads it; that file is not here, so its "
        "weights and compute buffer are not counted: download it and give --mmproj FILE")))


ROUTER_FIELDS = ("models_dir", "models_preset", "models_max")
MTMD_FIELDS = ("image_min_tokens", "image_max_tokens", "mtmd_batch_max_tokens")


def _mtmd_tokens(f: Flag, mmproj: str | None, auto: bool, no_effect: list[str], warnings: list[Message]) -> None:
    """--image-min-tokens / --image-max-tokens N and --mtmd-batch-max-tokens N (common/arg.cpp at 4df29be ->
    tools/mtmd/mtmd.cpp mtmd_context_params): what they change depends on the projector type.
    - The token limits reach clip.cpp as hparams.custom_image_min/max_tokens, read only by
      clip_hparams::set_limit_image_tokens (tools/mtmd/clip-model.h), which the dynamic-resolution types call in
      clip_model_loader::load_hparams; Gemma 3's projector (PROJECTOR_TYPE_GEMMA3, the type vramcalc sizes exactly)
      never calls it, keeps warmup_image_size = image_size and resizes every image to that square
      (mtmd_image_preprocessor_fixed_size): no effect.
    - The batch limit bounds the image tokens mtmd_batch_add_chunk puts in one encoding batch, and only for graphs
      that support batches (clip_graph::support_batch); clip_graph_siglip (Gemma 3) does not, so every batch holds
      one image: no effect.
    Without a projector (no --mmproj, and no -hf repo whose own projector llama-server may load) they act on
    nothing. With another projector type their effect on the encoder's graphs is not modelled, and warned about."""
    from .llamacpp.extras import file_is_here, read_mmproj

    _int(f.name, f.values[0])  # any value: read to refuse what common/arg.cpp's std::stoi refuses
    proj = read_mmproj(mmproj).projector if mmproj and file_is_here(mmproj) else None
    if (not mmproj and not auto) or proj == "gemma3":
        no_effect.append(f.written())
        return
    which = f"the {proj} projector" if proj else ("the -hf repo's own projector (not counted)" if not mmproj
                                                   else "this projector")
    warnings.append(warning("command.not_modelled", (
        f"{f.written()}: {f.entry['note'].split(': ', 1)[0]}, which for {which} changes the encoder's image graphs "
        "(tools/mtmd/clip.cpp set_limit_image_tokens, mtmd.cpp mtmd_batch_add_chunk); vramcalc models it for Gemma 3's "
        "projector only (no effect there); vramcalc does not model it yet: the figures ignore it")))


def _models_dir(path: str) -> list[str]:
    """common/preset.cpp common_preset_context::load_from_models_dir at 4df29be: each .gguf file of the folder (not an
    mmproj, nor an mtp- / dspark- / dflash- sidecar) is a model named by its stem; each subfolder is one model named
    by the folder, its first shard (-00001-of-) or its other .gguf file, with the folder's mmproj and sidecar."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise InputError(f"failed to initialize router models: error: '{path}' does not exist or is not a directory "
                         "[common/preset.cpp load_from_models_dir]")
    return [label for label, _ in _models_dir_files(path)]


def _models_dir_files(path: str) -> list[tuple[str, Path]]:
    """_models_dir's models, each with the model file its child llama-server loads (-m)."""
    d = Path(path).expanduser()
    companion = lambda n: "mmproj" in n or n.startswith(("mtp-", "dspark-", "dflash-"))  # noqa: E731
    out = []
    for e in sorted(d.iterdir()):
        if e.is_dir():
            ggufs = [x.name for x in sorted(e.iterdir()) if x.is_file() and x.name.endswith(".gguf")]
            main = [n for n in ggufs if not companion(n)]
            if main:
                first = next((n for n in main if "-00001-of-" in n), main[-1])
                extras = [n for n in ggufs if companion(n)]
                out.append((f"{e.name} ({first}" + "".join(f" + {n}" for n in extras) + ")", e / first))
        elif e.name.endswith(".gguf") and not companion(e.name):
            out.append((e.name.removesuffix(".gguf"), e))
    return out


def _models_preset(path: str) -> list[str]:
    """common/preset.cpp load_from_ini at 4df29be: each INI section but [*] (the options every model takes) is a model
    preset; its model is the section's model / m / hf-repo / hf key (or their LLAMA_ARG_ names), else the section
    names a model the router already has (a cached or --models-dir one)."""
    return _read_models_preset(path)[0]


# common/arg.cpp common_arg_utils::is_truthy at 4df29be; the preset-only key load-on-startup (its env name the other)
TRUTHY = ("on", "enabled", "true", "1")
LOAD_ON_STARTUP = ("load-on-startup", "__PRESET_LOAD_ON_STARTUP")


def _preset_sections(path: str) -> dict[str, dict[str, str]]:
    """common/preset.cpp parse_ini_from_file at 4df29be: each section's keys and values (a later key wins); keys
    before any section are the default preset's."""
    import configparser

    f = Path(path).expanduser()
    if not f.is_file():
        raise InputError(f"failed to initialize router models: preset file does not exist: {path} "
                         "[common/preset.cpp parse_ini_from_file]")
    ini = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"),
                                    inline_comment_prefixes=(";", "#"))
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        ini.read_string("[__top__]\n" + f.read_text())
    except configparser.Error as e:
        raise InputError(f"failed to initialize router models: {path}: {e}") from None
    return {n: dict(ini[n]) for n in ini.sections()}


def _read_models_preset(path: str) -> tuple[list[str], list[str], list[str], bool]:
    """The preset's models, its sections that start with the router (load-on-startup true, or unset under a [*] that
    sets it), those that set it false, and whether [*] sets it true (it then cascades to every model the router has:
    server-models.cpp load_models, common_preset_context::cascade; a section's own value wins, merge)."""
    ini = _preset_sections(path)
    keys = ("model", "m", "LLAMA_ARG_MODEL", "hf-repo", "hf", "hfr", "LLAMA_ARG_HF_REPO")
    startup = lambda sec: next((sec[k].strip() in TRUTHY for k in LOAD_ON_STARTUP if k in sec), None)  # noqa: E731
    out, on_start, off = [], [], []
    every = "*" in ini and bool(startup(ini["*"]))
    for name in ini:
        if name in ("*", "__top__"):
            continue
        src = next((ini[name][k] for k in keys if k in ini[name]), None)
        out.append(f"{name} ({src})" if src else name)
        if (on := startup(ini[name])) or (on is None and every):
            on_start.append(name)
        elif on is not None:
            off.append(name)
    return out, on_start, off, every


# tools/server/server-models.cpp unset_reserved_args at 4df29be: the router's flags its children do not take (with the
# router's own -mm and -a; it sets --host / --port / --alias itself); -mu / -dr are the router's own downloads
ROUTER_ONLY = ("--models-dir", "--models-preset", "--models-max", "--models-autoload", "--host", "--port",
               "--api-key", "--ssl-key-file", "--ssl-cert-file", "-a", "-mm", "-mu", "-dr")


class RouterMode(NotModelledError):
    """Raised by read_command for a llama-server router (_router): check_command checks each child (_router_check)."""

    def __init__(self, text: str, children: list[tuple[str, str, bool]], models_max: int,
                 own: list[str]) -> None:
        super().__init__(text)
        self.children = children  # (model name, the child's llama-server command, load-on-startup)
        self.models_max = models_max
        self.own = own  # the router's own flags its children do not take (--port ...): no effect on memory


def _option_ids() -> dict[str, tuple[str, ...]]:
    """common/preset.cpp get_map_key_opt at 4df29be: an INI key is an option's name less its dashes, or its env name."""
    ids: dict[str, tuple[str, ...]] = {}
    for o in llamacpp_table()["options"]:
        for n in [*o["names"], *o["negated"]]:
            ids[n.lstrip("-")] = ids[n] = tuple(o["names"])
        if o.get("env"):
            ids[o["env"]] = tuple(o["names"])
    return ids


def _preset_args(section: dict[str, str], ids: dict[str, tuple[str, ...]], where: str) -> dict[tuple[str, ...], list[str]]:
    """common/preset.cpp load_from_ini + common_preset::to_args at 4df29be: each key's option as its last (long) name
    and the value; a switch set false is its negated name, else dropped (a negated key's value is reversed first,
    parse_bool_arg). The preset-only keys (load-on-startup, stop-timeout) are not arguments."""
    table = {tuple(o["names"]): o for o in llamacpp_table()["options"]}
    out: dict[tuple[str, ...], list[str]] = {}
    for k, v in section.items():
        if k in ("version", "stop-timeout", *LOAD_ON_STARTUP):
            continue
        if k not in ids:
            raise InputError(f"failed to initialize router models: option '{k}' not recognized in preset '{where}' "
                             "[common/preset.cpp load_from_ini]")
        o = table[ids[k]]
        v = v.strip()
        if o["values"] == 0:  # value_hint nullptr: a flag
            if o["negated"] and k in [n.lstrip("-") for n in o["negated"]]:
                v = "false" if v in TRUTHY else "true"
            falsey = v in ("off", "disabled", "false", "0")  # common_arg_utils::is_falsey
            out[ids[k]] = ([o["negated"][-1]] if o["negated"] else []) if falsey else [o["names"][-1]]
        else:
            out[ids[k]] = [o["names"][-1], v]
    return out


def _router(router: dict[str, Flag], docker: str | None, model: str | None, flags: list[Flag],
            prefix: list[str]) -> None:
    """tools/server/server.cpp llama_server at 4df29be: with no model path and no -hf repo, llama-server starts in
    router mode (is_router_server) and loads no model itself; tools/server/server-models.cpp server_models::load_models
    serves the models of llama.cpp's cache, of --models-dir and of --models-preset, each loaded in a llama-server
    child process of its own whose flags are [*]'s, then the folder's model (-m, --mmproj, the sidecar as -md), then
    its section's (cascade, merge), then the router's own flags over them (preset.merge(base_preset), less
    unset_reserved_args' --models-*, --host / --port, --api-key, SSL files, -m / -mm / -a / -hf). At most
    --models-max (4; 0: no limit) run at once, the least recently used stopped for another (unload_lru); the presets
    marked load-on-startup start with the router, and more of them than --models-max stop it (load_models, refused
    here in its words). Raises RouterMode with the children's commands, which check_command checks one by one.
    -mu's and -dr's downloads are made by the single-model path only: alone they start a router serving the cache."""
    if docker or model:
        if not router:
            raise NotModelledError(
                "llama-server starts in router mode: no -m or -hf (tools/server/server.cpp is_router_server) ("
                f"{'-dr ' + docker if docker else '-mu'} without -m: llama-server downloads it only in single-model "
                "mode, which needs -m FILE (the download's path) or -hf); as a router it serves only the models of "
                "llama.cpp's cache, which vramcalc does not read: give -m FILE or --models-dir")
    ids = _option_ids()
    base = [f for f in flags if f.key not in ROUTER_ONLY]
    base_ids = {ids.get(f.name) or ids.get(f.key) for f in base}
    mm = next((g for g in flags if g.key == "--models-max"), None)
    models_max = _int(mm.name, mm.values[0]) if mm else 4  # common.h common_params::models_max
    models: dict[str, dict[tuple[str, ...], list[str]]] = {}  # name -> the preset's arguments, in load_models' order
    m_id, mm_id, md_id = ids["LLAMA_ARG_MODEL"], ids["LLAMA_ARG_MMPROJ"], ids["LLAMA_ARG_SPEC_DRAFT_MODEL"]
    if "models_dir" in router:
        _models_dir(router["models_dir"].values[0])  # refuses a missing folder
        for label, path in _models_dir_files(router["models_dir"].values[0]):
            args = {m_id: [m_id[-1], str(path)]}
            if path.parent != Path(router["models_dir"].values[0]).expanduser():  # a subfolder: its companions
                for n in label.split(" (", 1)[1].rstrip(")").split(" + ")[1:]:
                    i = mm_id if "mmproj" in n else md_id
                    args[i] = [i[-1], str(path.parent / n)]
            models[label.split(" (")[0]] = args
    on_start: list[str] = []
    if "models_preset" in router:
        f = router["models_preset"]
        names, on_start, off, every = _read_models_preset(f.values[0])
        secs = _preset_sections(f.values[0])
        glob = _preset_args(secs.get("*", {}), ids, "*")
        if every and "models_dir" in router:  # [*]'s load-on-startup reaches the --models-dir models too
            on_start += [n for n in models if n not in on_start + off]
        if len(on_start) > models_max:  # cached models that [*] marks too are not counted: there are at least these
            raise InputError(f"failed to initialize router models: number of models to load on startup "
                             f"({len(on_start)}) exceeds models_max ({models_max}) "
                             "[tools/server/server-models.cpp load_models]")
        for n in models:
            models[n] = {**glob, **models[n]}
        for n in (x.split(" (")[0] for x in names):
            own = _preset_args(secs[n], ids, n)
            if n not in models and not own.keys() & {m_id, ids["LLAMA_ARG_HF_REPO"]}:
                raise NotModelledError(f"--models-preset: section [{n}] names no model (model / hf-repo) and no "
                                       "--models-dir model: one of llama.cpp's cache, which vramcalc does not read; "
                                       "give its model = FILE")
            models[n] = {**(models.get(n) or glob), **own}
    children = []
    for n, args in models.items():
        words = [w for i, a in args.items() if i not in base_ids for w in a]
        cmd = shlex.join([*prefix, *words])  # the router's own program, environment and container
        children.append((n, cmd + "".join(f" {f.written()}" for f in base), n in on_start))
    shown = "; ".join(c for _, c, _ in children[:3]) + ("; ..." if len(children) > 3 else "")
    raise RouterMode(
        "llama-server starts in router mode: no -m or -hf (tools/server/server.cpp is_router_server): each model "
        "runs in a llama-server child process of its own, checked one by one by `vramcalc check -- llama-server ...`"
        + (f" ({shown})" if shown else ""), children, models_max,
        [f.written() for f in flags if f.key in ROUTER_ONLY and f.entry.get("field") not in ROUTER_FIELDS])


def _docker_model(value: str, env: dict[str, str], warnings: list[Message]) -> str:
    """-dr / --docker-repo [<repo>/]<model>[:tag] (common/arg.cpp at 4df29be -> common/download.cpp
    common_docker_resolve_model): the repo defaults to ai/ and the tag to latest; the manifest's GGUF layer is
    downloaded to the cache file <repo with / as _>_<tag>.gguf and loaded from there. Read from that file when it is
    here; else from the name <model>-<tag>.gguf (ai/ tags are <size>-<quant>: ai/smollm2:135M-Q4_0), as a file name
    is read; :latest names no file type offline (the registry's manifest says which file it is)."""
    repo, _, tag = value.partition(":")
    tag = tag or "latest"
    if "/" not in value:
        repo = f"ai/{repo}"
    path = llama_cache_file(f"{repo.replace('/', '_')}_{tag}.gguf", env)
    if Path(path).expanduser().is_file():
        return path
    if tag == "latest":
        raise InputError(f"-dr {value}: llama.cpp downloads the file Docker Hub's {repo}:latest points to into {path}, "
                         "which is not here, and :latest names no file type: give the tag (-dr "
                         f"{repo}:<size>-<quant>, such as ai/smollm2:135M-Q4_0) or the downloaded file with -m")
    warnings.append(warning("llamacpp.docker.offline", (
        f"-dr {value}: llama.cpp downloads it from Docker Hub into {path}, which is not here: read by its name as "
        f"{repo.split('/')[-1]}-{tag}.gguf")))
    return f"{repo.split('/')[-1]}-{tag}.gguf"


def read_command(text: str) -> tuple[Parsed, Reading]:
    p = parse_command(text)
    return p, (_vllm_reading(p) if p.engine == "vllm" else _llama_reading(p))


# ---------------------------------------------------------------- the check

@dataclass
class Question:
    """The command as vramcalc.check's arguments."""
    engine: Literal["vllm", "llamacpp"]
    model: str
    system: str
    options: dict[str, Any]
    warnings: list[Message]
    # a check's own question (plain_fix): the model as it was opened and the system as it was given, re-checked as
    # they are (model and system then only name them)
    source: Any = None
    system_as: Any = None


def _model(r: Reading, options: dict[str, Any], warnings: list[Message]) -> str:
    """The model name vramcalc.check takes for the command's, with the quant it implies."""
    from .sources import model_names as mn

    if r.engine == "llamacpp":
        return _gguf_model(r.model, options, warnings)
    name = r.model
    if name.endswith(".gguf") or Path(name).expanduser().exists() or mn.catalog.resolve(name):
        return name
    from .api import model_source
    from .sources.limits import looks_local

    failure: VramcalcError | None = None
    if not looks_local(name):
        try:
            model_source(name, options.get("revision"))
            return name
        except VramcalcError as e:  # offline, gated, missing: read the name instead
            failure = e
    stem = name.rstrip("/").split("/")[-1] if looks_local(name) else name
    base = mn.quantized_base(stem)
    where = "is not here" if looks_local(name) else "could not be read from the Hub"
    if base is not None:
        repo, quant = base
        given = options.get("quantization")
        if given and _vllm_method(given) != _vllm_method(quant):
            raise InputError(f"--quantization {given}: {name} is a {quant} release (vLLM refuses a method other than "
                             "the checkpoint's)")
        options["quantization"] = quant
        warnings.append(warning("command.repo_offline", f"{name} {where}: checked as {repo} with --quant {quant}; "
                                f"fetch {name} (or pass its local folder) for its exact bytes"))
        return repo
    same = mn.catalog_base(stem)
    if same is not None and mn.quantized_release(same) and not mn.quantized_release(stem):
        # the catalog holds only a quantized release of it: its bytes are not the model's (a false "fits")
        raise InputError(f"{name} {where}, and the catalog holds only a quantized release of it ({same}, "
                         f"{mn.quantized_release(same)}): its bytes are not this model's; pass the model's folder "
                         f"(config.json and safetensors headers), or check {same} if that is what you run")
    if same is not None:
        warnings.append(warning("command.catalog_name", f"{name} {where}: its name is read as the catalog's {same} "
                                "(the same architecture); pass the model's folder for its own config and bytes"))
        return same
    if failure is not None:
        raise failure
    return name  # a local path that is not here: refused by open_model with its own line


def _vllm_method(q: str) -> str:
    """vLLM's --quantization names and vramcalc's targets as one family: awq_marlin is awq, fp8-block is fp8."""
    q = q.lower().replace("_marlin", "").replace("-", "_")
    return {"fp8_block": "fp8", "fp8_dynamic": "fp8", "gptq_8bit": "gptq", "w4a16": "compressed_tensors",
            "bnb_nf4": "bitsandbytes", "bnb_int8": "bitsandbytes"}.get(q, q)


def _gguf_model(ref: str, options: dict[str, Any], warnings: list[Message]) -> str:
    """-m FILE (read when it is here: its own tensor types, whatever its name), -hf REPO[:QUANT] or a file name: the
    catalog model and the file type it names; a publisher's mix sized as the standard type above it."""
    from .sources import model_names as mn

    if ref.startswith("hf:"):
        spec, _, hf_file = ref[3:].partition("::")
        base, ftype = mn.gguf_name(hf_file) if hf_file else mn.hf_repo(spec)
        if base is None:
            base = mn.hf_repo(spec)[0]
        what = f"-hf {spec}" + (f" --hf-file {hf_file}" if hf_file else "")
        if ":" not in spec and not hf_file:  # common/download.cpp find_best_model, without a tag
            dtype, dfile, where = mn.hf_default(spec)
            warnings.append(warning("llamacpp.hf.default_file", (
                f"-hf {spec} without :quant: llama.cpp takes {dfile} ({dtype}), the first file matching Q4_K_M, "
                f"else Q8_0, else the first model file, in the repo's listing ({where})") if dfile else (
                f"-hf {spec} without :quant: llama.cpp takes the first file matching Q4_K_M, else Q8_0, else the "
                f"first model file (common/download.cpp find_best_model); this repo's files are not known here, so "
                f"{dtype} is assumed: give :QUANT (or the downloaded file) to check what you run")))
    else:
        if Path(ref).expanduser().is_file():
            return ref  # the file's own header: its tensor types and bytes
        base, ftype = mn.gguf_name(ref)
        what = f"-m {ref}"
    if base is None:
        raise InputError(f"{what}: the file is not here and its name names no catalog model (`vramcalc models` lists "
                         "them): give the path of the downloaded file")
    if ftype is None:
        raise InputError(f"{what}: the name carries no llama.cpp file type (Q4_K_M ...): give the downloaded file")
    mix = mn.gguf_mix(ftype)
    if mix is not None:
        warnings.append(warning(
            "command.gguf_mix", f"{ftype} is {mix.publisher}'s own mix of tensor types, between {mix.lower} and "
            f"{mix.upper}: sized as {mix.upper} (the larger), so a fit holds for the real file; the file's header "
            "gives its exact bytes"))
        ftype = mix.upper
    warnings.append(warning("command.gguf_predicted", f"{what}: no file here; {base} predicted as llama-quantize's "
                            f"{ftype}"))
    options["quant"] = f"gguf:{ftype}"
    return base


def _system(system: str, p: Parsed, r: Reading) -> str:
    """--gpu with the GPU count the command gives (CUDA_VISIBLE_DEVICES=0,1 on --gpu 4090 is 2x4090) and its RPC
    servers (one node each)."""
    from .systems import parse_system

    s = system.strip()
    if r.engine == "llamacpp" and s.lower() == "cpu":
        return s
    sys_ = parse_system(s)
    n = sys_.gpus_per_node
    if p.gpu_count is not None and p.gpu_count != n:
        if p.gpu_count == 0:
            if r.engine == "vllm":
                raise InputError(f"{p.gpu_count_source}: no GPU visible, and vLLM runs on GPUs")
            return "cpu"
        if n == 1 and sys_.nodes == 1:
            s = f"{p.gpu_count}x{s}"
        else:
            raise InputError(f"{p.gpu_count_source} gives {p.gpu_count} GPUs, but --gpu {s!r} has {n} per machine")
    nn = r.nnodes or 1
    if r.engine == "vllm" and nn > 1 and parse_system(s).nodes != nn:
        sys_n = parse_system(s)
        total = sys_n.nodes * sys_n.gpus_per_node
        per = total // nn if total % nn == 0 else sys_n.gpus_per_node
        raise InputError(f"--nnodes {nn}: give every machine in --gpu, e.g. --gpu {nn}x{per}x"
                         f"{parse_system(s).gpus[0].id} (machines x GPUs x GPU)")
    if r.engine == "llamacpp":
        nodes = parse_system(s).nodes
        if r.rpc_servers and nodes == 1:
            raise InputError(f"--rpc names {r.rpc_servers} server(s): give every machine in --gpu, e.g. "
                             f"--gpu {r.rpc_servers + 1}x1x{s} (machines x GPUs x GPU)")
        if nodes > 1 and nodes != r.rpc_servers + 1:
            raise InputError(f"--gpu {s!r} has {nodes} machines, and the command's --rpc names {r.rpc_servers} "
                             f"server(s): llama.cpp uses this machine and one per --rpc server")
    return s


def _checkpoint_method(model: str, options: dict[str, Any], r: Reading) -> None:
    """--quantization on a quantized checkpoint: vLLM loads the checkpoint's own method, and refuses another one
    (vllm/config/model.py ModelConfig._verify_quantization, 0.33.0)."""
    from .api import model_source

    qc = model_source(model, options.get("revision")).spec.quantization_config or {}
    method = qc.get("quant_method")
    if not method:
        return  # an unquantized checkpoint: --quantization fp8 quantizes it at load time
    if options.get("quantization") == "humming":  # HummingConfig.override_quantization_method (vLLM 0.34.0
        #                                            quantization/humming.py) takes any checkpoint but gpt-oss MXFP4
        if method == "mxfp4" and model_source(model, options.get("revision")).spec.model_type == "gpt_oss":
            raise InputError("ValueError: For gpt-oss model, use '--moe-backend humming' instead of "
                             "'--quantization humming'.")
        return
    given = options.pop("quantization")
    if _vllm_method(given) != _vllm_method(str(method)):
        raise InputError(f"Quantization method specified in the model config ({method}) does not match the "
                         f"quantization method specified in the `quantization` argument ({given}).")
    r.no_effect.append(f"--quantization {given} (the checkpoint's own method)")


def question(command: str, system: str) -> tuple[Parsed, Reading, Question]:
    p, r = read_command(command)
    options = dict(r.options)
    warnings = list(p.notes) + list(r.warnings)
    # --hf-config-path: the model is sized from that config (api.py config_source); its own need not be read
    by_config = options.get("hf_config_path") not in (None, r.model)
    try:
        model = r.model if by_config else _model(r, options, warnings)
    except VramcalcError as e:
        if p.refusal is None:
            raise
        said = p.refusal[0]  # the engine stops at the flag first; then the model is what is missing
        raise InputError(f"{said.text} (fix: {said.fix}); then: {e}") from e
    if r.engine == "vllm" and options.get("quantization") and model == r.model and not by_config:
        _checkpoint_method(model, options, r)
    system = _system(system, p, r)
    if r.engine == "vllm":
        from .systems import parse_system

        sys_ = parse_system(system)
        # vllm/engine/arg_utils.py EngineArgs (0.33.0): tensor_parallel_size and pipeline_parallel_size default
        # to 1, whatever CUDA_VISIBLE_DEVICES shows
        tp, pp = options.get("tp", 1), options.get("pp", 1)
        have, used = len(sys_.gpus) * sys_.nodes, tp * pp * options.get("data_parallel_size", 1)
        if used < have:
            warnings.append(warning("command.idle_gpus", f"vLLM uses {used} of the {have} GPUs: "
                                    f"--tensor-parallel-size {tp} x --pipeline-parallel-size {pp}"
                                    + (f" x --data-parallel-size {options['data_parallel_size']}"
                                       if options.get("data_parallel_size", 1) > 1 else "")
                                    + " (both sizes default to 1); the check is for the GPUs it uses",
                                    fix=f"--tensor-parallel-size {have // pp} to use them all"))
            if sys_.nodes == 1 and len({g.id for g in sys_.gpus}) == 1:
                system = sys_.gpus[0].id if used == 1 else f"{used}x{sys_.gpus[0].id}"
    return p, r, Question(engine=r.engine, model=model, system=system, options=options, warnings=warnings)


class CommandResult(Result):
    """`vramcalc check --gpu SYSTEM -- <command>`: the engine's verdict on that command, the same check as
    `vramcalc_command`, and the smallest change that makes it start."""
    model_config = ConfigDict(frozen=True)

    command: str
    program: str
    engine: str
    model: str  # as vramcalc.check takes it
    system: str  # as vramcalc.check takes it, with the command's GPU count
    options: dict[str, Any]  # vramcalc.check's options for the command
    vramcalc_command: str  # the same check with vramcalc's flags
    fits: bool
    result: VLLMResult | LlamaResult
    no_effect: list[str]  # the flags (and VLLM_* variables) that do not change memory
    warnings: list[Message]
    fix: str | None = None  # the smallest change that makes it start
    corrected_command: str | None = None
    # without --gpu: each reference system tried (data/planner.json reference_gpus) and whether the command starts
    tried_systems: dict[str, bool] = {}
    # llama-server in router mode: each child's check and the sums (the other fields: the largest child's check)
    router: RouterResult | None = None

    def table(self) -> list[Row]:
        return self.result.table()


class RouterChild(Result):
    """One model of a llama-server router: its child llama-server's command, checked as `vramcalc check` checks it."""
    model_config = ConfigDict(frozen=True)

    name: str  # the model's name in the router (its file's stem, its folder, its preset section)
    load_on_startup: bool  # started with the router (the preset's load-on-startup); else loaded on demand
    check: CommandResult


class RouterDevice(Result):
    """One device's memory under a llama-server router: the children's figures (total + uncertainty) summed."""
    model_config = ConfigDict(frozen=True)

    device: str
    available_bytes: int  # after the fit margin, as each child's check has it; -1: not checked (host RAM not given)
    startup_bytes: int  # the load-on-startup children's, summed: they run at once
    largest_bytes: int  # the --models-max children largest on this device, summed (all of them with --models-max 0)


class RouterResult(Result):
    """llama-server in router mode (no -m, no -hf; tools/server/server.cpp, server-models.cpp at 4df29be): it loads
    no model itself; each model runs in a child llama-server, at most models_max at once (0: no limit)."""
    model_config = ConfigDict(frozen=True)

    models_max: int
    children: list[RouterChild]
    devices: list[RouterDevice]
    starts: bool  # every load-on-startup child fits, and they fit together
    largest_fit: bool  # the models_max largest children fit together on every device


CommandResult.model_rebuild()


def _router_check(command: str, rm: RouterMode, system: str, host_ram_bytes: int | None) -> CommandResult:
    """Each child checked as its own command (check_command), then summed per device: the load-on-startup children
    run at once from the start; any models_max of them may run at once later (server-models.cpp unload_lru)."""
    if not rm.children:
        raise NotModelledError(f"{rm}: no model vramcalc can read (the models of llama.cpp's cache are not read): "
                               "give --models-dir or a --models-preset with model = FILE")
    kids = [RouterChild(name=n, load_on_startup=on, check=check_command(cmd, system, host_ram_bytes))
            for n, cmd, on in rm.children]
    need: dict[str, list[tuple[int, bool]]] = {}
    avail: dict[str, int] = {}
    for k in kids:
        for d in k.check.result.devices if isinstance(k.check.result, LlamaResult) else []:
            need.setdefault(d.device, []).append((d.total_bytes + d.uncertainty_bytes, k.load_on_startup))
            avail.setdefault(d.device, d.available_bytes)
    n = rm.models_max if rm.models_max > 0 else len(kids)
    devices = [RouterDevice(device=dev, available_bytes=avail[dev], startup_bytes=sum(b for b, on in xs if on),
                            largest_bytes=sum(sorted((b for b, _ in xs), reverse=True)[:n])) for dev, xs in need.items()]
    fits_on = lambda key: all(d.available_bytes < 0 or key(d) <= d.available_bytes for d in devices)  # noqa: E731
    starts = fits_on(lambda d: d.startup_bytes) and all(k.check.fits for k in kids if k.load_on_startup)
    largest = fits_on(lambda d: d.largest_bytes)
    warnings = [warning("llamacpp.router.fit", (
        "router mode: each model's figures are its child llama-server's alone; a child's --fit (on by default) sizes "
        "it to the memory free when it starts, so beside others a later child takes fewer GPU layers or a shorter "
        "context than here, or stops (common/fit.cpp common_fit_params, which each child runs in common_init_from_params as it starts)"))]
    gib = lambda b: f"{b / 2**30:.2f} GiB"  # noqa: E731
    if not largest:
        over = [d for d in devices if 0 <= d.available_bytes < d.largest_bytes]
        warnings.append(warning("llamacpp.router.together", (
            f"router mode: the {min(n, len(kids))} largest models together (--models-max {rm.models_max}) need "
            + ", ".join(f"{gib(d.largest_bytes)} on {d.device} of {gib(d.available_bytes)}" for d in over)
            + ": requests that load them at once do not fit as checked here"),
            fix=f"--models-max {max(1, rm.models_max - 1) if rm.models_max > 0 else len(kids) - 1}"))
    alone = [k.name for k in kids if not k.check.fits]
    fix = None
    if not starts:
        fix = "fewer load-on-startup models, or smaller ones"
    elif alone:
        fix = f"{', '.join(alone)}: see that model's own check (it does not fit alone)"
    main = max(kids, key=lambda k: sum(d.total_bytes for d in k.check.result.devices)
               if isinstance(k.check.result, LlamaResult) else 0).check
    router = RouterResult(models_max=rm.models_max, children=kids, devices=devices, starts=starts, largest_fit=largest)
    return main.model_copy(update={"command": command, "fits": starts and not alone, "warnings": warnings,
                                   "no_effect": rm.own, "fix": fix, "corrected_command": None, "tried_systems": {},
                                   "router": router})


def _flag_line(q: Question) -> str:
    """The same check with vramcalc's own flags."""
    o = dict(q.options)
    parts = ["vramcalc", "check", shlex.quote(q.model), "--gpu", shlex.quote(q.system), "--engine", q.engine]
    names = {"tp": "--tp", "pp": "--pp", "max_model_len": "--max-model-len", "quantization": "--quant", "quant": "--quant",
             "n_ctx": "-c", "n_parallel": "--parallel", "n_gpu_layers": "-ngl", "type_k": "-ctk", "type_v": "-ctv",
             "flash_attn": "-fa", "n_batch": "-b", "n_ubatch": "-ub", "split_mode": "-sm", "main_gpu": "-mg",
             "n_cpu_moe": "--n-cpu-moe", "data_parallel_size": "--data-parallel-size", "model_draft": "-md",
             "n_gpu_layers_draft": "-ngld", "draft_max": "--draft-max", "type_k_draft": "-ctkd", "type_v_draft": "-ctvd",
             "mmproj": "--mmproj", "n_ctx_checkpoints": "-ctxcp", "cache_ram_mib": "-cram",
             "spec_ngram_mod_n_max": "--spec-ngram-mod-n-max", "spec_ngram_simple_size_m": "--spec-ngram-simple-size-m",
             "spec_ngram_map_k_size_m": "--spec-ngram-map-k-size-m",
             "spec_ngram_map_k4v_size_m": "--spec-ngram-map-k4v-size-m",
             "decode_context_parallel_size": "--decode-context-parallel-size"}
    for k, v in o.items():
        if k in ("lora", "lora_scaled"):
            for item in v:
                parts += [f"--{k.replace('_', '-')}", shlex.quote(item)]
            continue
        if k == "control_vectors":
            for item in v:
                parts += ["--control-vector", shlex.quote(item)]
            continue
        if k == "override_tensor_draft":
            for item in v:
                parts += ["-otd", shlex.quote(item)]
            continue
        if k == "kv_overrides":
            parts += ["--override-kv", shlex.quote(",".join(v))]
            continue
        if k == "spec_types":
            parts += ["--spec-type", ",".join(v)]
            continue
        if k == "device_draft":
            parts += ["-devd", ",".join(v)]
            continue
        if k == "mmproj_offload":
            parts += [] if v else ["--no-mmproj-offload"]
            continue
        if isinstance(v, bool):
            flag = {"kv_unified": None if v else "--no-kv-unified", "enforce_eager": "--enforce-eager" if v else None,
                    "no_kv_offload": "-nkvo" if v else None, "swa_full": "--swa-full" if v else None,
                    "cpu_moe": "--cpu-moe" if v else None,
                    "disable_custom_all_reduce": "--disable-custom-all-reduce" if v else None,
                    "enable_expert_parallel": "--enable-expert-parallel" if v else None,
                    "enable_chunked_prefill": None if v else "--disable-chunked-prefill",
                    "disable_hybrid_kv_cache_manager": "--disable-hybrid-kv-cache-manager" if v else None,
                    "disable_sliding_window": "--disable-sliding-window" if v else None,
                    "rocm_fp8_padding": None if v else "--no-rocm-fp8-padding",
                    "mxfp8_emulation_dequant": None if v else "--no-mxfp8-emulation-dequant",
                    "simple_kv_offload": "--simple-kv-offload" if v else None,
                    "enable_eplb": "--enable-eplb" if v else None,
                    "enable_return_routed_experts": "--enable-return-routed-experts" if v else None,
                    "enable_dbo": "--enable-dbo" if v else None,
                    "monokernel": "--monokernel" if v else None,
                    "deepep_force_intra_node": "--deepep-force-intra-node" if v else None,
                    "mla_disable": "--mla-disable" if v else None,
                    "dcp_q_replicate": "--dcp-q-replicate" if v else None,
                    "replicate_embed": "--replicate-embed" if v else None,
                    "use_fused_mqa_topk": None if v else "--no-fused-mqa-topk",
                    "weight_offloading_disable_uva": "--weight-offloading-disable-uva" if v else None,
                    "confidential_compute": "--confidential-compute" if v else None,
                    "estimate_cudagraphs": None if v else "--no-estimate-cudagraphs",
                    "enable_prefix_caching": "--enable-prefix-caching" if v else "--no-enable-prefix-caching",
                    "use_replayssm": "--use-replayssm" if v else None,
                    "enable_extensible_kv_cache": "--enable-extensible-kv-cache" if v else
                    "--disable-extensible-kv-cache",
                    "enable_elastic_ep": "--enable-elastic-ep" if v else None,
                    "fp8_moe_requant": "--fp8-moe-requant" if v else None,
                    "rocm_aiter_moe": "--rocm-aiter-moe" if v else None,
                    "mxfp4_emulation_dequant": "--mxfp4-emulation-dequant" if v else None,
                    }.get(k, _cli_flag(k, v))
            if flag:
                parts.append(flag)
        elif k == "tensor_split":
            parts += ["-ts", ",".join(f"{x:g}" for x in v)]
        elif k == "pp_layer_partition":
            parts += ["--pp-layer-partition", ",".join(map(str, v))]
        elif k == "cudagraph_capture_sizes":
            parts += ["--cudagraph-capture-sizes", *map(str, v)]
        elif k in ("kv_cache_dtype_skip_layers", "cpu_offload_params", "offload_params"):
            parts += [f"--{k.replace('_', '-')}", *map(shlex.quote, v)]
        elif k == "speculative_config":
            parts += ["--speculative-config", shlex.quote(json.dumps(v, separators=(",", ":")))]
        elif k in ("hf_overrides", "eplb_config", "aux_output_config", "kv_transfer_config", "attention_config"):
            parts += [f"--{k.replace('_', '-')}", shlex.quote(json.dumps(v, separators=(",", ":")))]
        elif k == "n_ctx" and v is None:  # the model's own context: llama.cpp's -c 0, which vramcalc's -c takes too
            parts += ["-c", "0"]
        elif k in names:
            parts += [names[k], shlex.quote(str(v))]
        elif v is not None:
            parts.append(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" if k in (
                "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens", "kv_cache_dtype", "block_size",
                "dtype", "engine_version", "moe_backend", "cpu_offload_gb", "mm_ipc_gpu_memory_gb", "video_pruning_rate",
                "num_gpu_blocks_override", "mamba_cache_dtype", "mamba_ssm_cache_dtype", "mm_encoder_tp_mode",
                "mm_encoder_attn_dtype", "mm_encoder_attn_backend",
                "max_cudagraph_capture_size", "performance_mode", "kv_offloading_size", "kv_offloading_backend",
                "mamba_block_size", "runner", "convert", "load_format", "attention_backend", "ubatch_size",
                "all2all_backend", "deepep_buffer_size_mb", "flashinfer_workspace_bytes", "kv_cache_layout", "sparse_indexer_max_logits_mb",
                "sparse_indexer_max_decode_logits_mb", "max_tokens_per_expert_fp4_moe", "gdn_prefill_backend", "kda_prefill_backend", "linear_backend",
                "sparse_indexer_topk_backend", "replayssm_buffer_len",
                "mamba_backend", "mamba_ssu_algorithm", "offload_backend", "offload_group_size",
                "offload_num_in_group", "offload_prefetch_step", "prefill_context_parallel_size")
                else _cli_flag(k, v) or f"({k}={v!r})")
    return " ".join(parts)


@lru_cache(maxsize=None)
def _check_actions() -> dict[str, argparse.Action]:
    """`vramcalc check`'s own arguments by destination (vramcalc/cli/check.py add_arguments)."""
    from .cli.check import add_arguments

    ap = argparse.ArgumentParser(add_help=False)
    add_arguments(ap)
    return {a.dest: a for a in ap._actions if a.option_strings}


def _cli_flag(k: str, v: Any) -> str | None:
    """An option not named above, spelt as `vramcalc check` takes it: a switch for a boolean, else the option and its
    value (JSON for a mapping); None when vramcalc check has no option for it."""
    a = _check_actions().get(k)
    if a is None:
        return None
    longs = [o for o in a.option_strings if o.startswith("--")]
    opt = next((o for o in longs if o == "--" + k.replace("_", "-")), longs[0] if longs else a.option_strings[0])
    if isinstance(v, bool):
        if isinstance(a, argparse._StoreTrueAction):
            return opt if v else ""
        if isinstance(a, argparse._StoreFalseAction):
            return "" if v else opt
        return None
    if isinstance(v, dict):
        return f"{opt} {shlex.quote(json.dumps(v, separators=(',', ':')))}"
    if isinstance(v, (list, tuple)):  # a repeated option, else one option with its values (nargs)
        if isinstance(a, argparse._AppendAction):
            return " ".join(f"{opt} {shlex.quote(str(x))}" for x in v)
        return " ".join([opt, *(shlex.quote(str(x)) for x in v)])
    return f"{opt} {shlex.quote(str(v))}"


def _run(q: Question, options: dict[str, Any], host_ram_bytes: int | None) -> VLLMResult | LlamaResult:
    from .api import check
    from .engine_checks import FIX

    extra = {"host_ram_bytes": host_ram_bytes} if host_ram_bytes is not None else {}
    token = FIX.set(False)  # the command's own fix is searched here (_smallest_fix), not in each check
    try:
        r = check(q.source if q.source is not None else q.model, q.system_as if q.system_as is not None else q.system,
                  engine=q.engine, **options, **extra)
    finally:
        FIX.reset(token)
    assert isinstance(r, (VLLMResult, LlamaResult))
    return r


def _with(p: Parsed, drop: tuple[str, ...], add: list[str]) -> str:
    """The command with the flags `drop` names removed and `add` appended."""
    args, out, i = p.args, [], 0
    while i < len(args):
        a = args[i]
        key = a.split("=", 1)[0]
        key = key.replace("_", "-") if key.startswith("--") else key
        if key in drop:
            i += 1 if "=" in a else 2
            continue
        out.append(a)
        i += 1
    return _command_line(p, out + add)


def _command_line(p: Parsed, args: list[str]) -> str:
    """The command as the shell takes it: its environment assignments, the program, `args`."""
    env = [f"{k}={shlex.quote(v)}" for k, v in p.env.items()]
    return " ".join(env + [shlex.join(p.prefix + args)])


VLLM_TP = ("--tensor-parallel-size", "-tp")
VLLM_PP = ("--pipeline-parallel-size", "-pp")


Try = tuple[str, tuple[str, ...], list[str], dict[str, Any]]  # why, the flags it drops, the words it adds, the options


def _fix_tries(q: Question, r: VLLMResult | LlamaResult) -> list[Try]:
    """Changes of one flag, in the order they are re-checked: the refusal's own fix (the model's length, the Mamba
    blocks, eager mode, the utilization), fewer sequences where not one request fits, a shorter context, fp8 KV,
    another TP x PP over the same GPUs; then a shorter context with fewer sequences; llama.cpp: V's type, the
    context, fewer GPU layers. Each flag as vLLM / llama-server and `vramcalc check` both spell it."""
    tries: list[Try] = []
    eager = bool(q.options.get("enforce_eager"))
    if isinstance(r, VLLMResult):
        from .api import as_system
        from .vllm.engine import default_utilization, max_startup_utilization

        gpu = min(as_system(q.system_as if q.system_as is not None else q.system).gpus,
                  key=lambda g: g.usable_bytes)
        asked = q.options.get("gpu_memory_utilization")
        u_now = asked if asked is not None else default_utilization(q.options.get("engine_version"))
        u_max = max_startup_utilization(gpu, r.layout.tp, r.layout.pp)
        for e in r.errors:  # a refusal that names its own one-flag fix (graph capture, the outside-budget guard)
            if e.code == "vllm.max_model_len.exceeds_model" and e.fix:  # the model's own length
                n = int(e.fix.split("--max-model-len ")[1].split()[0])
                tries.append((f"--max-model-len {n} (the model's own length)", ("--max-model-len",),
                              ["--max-model-len", str(n)], {"max_model_len": n}))
            if e.code == "vllm.cudagraph.oom" and not eager:
                tries.append(("--enforce-eager (no CUDA graphs to capture; slower decoding)", ("--enforce-eager",),
                              ["--enforce-eager"], {"enforce_eager": True}))
            if e.code in ("vllm.cudagraph.oom", "vllm.verdict.headroom") and e.fix and "--gpu-memory-utilization " in e.fix:
                u_fix = float(e.fix.split("--gpu-memory-utilization ")[1].split()[0].rstrip(","))
                tries.append((f"--gpu-memory-utilization {u_fix} (leaves room outside the budget)",
                              ("--gpu-memory-utilization",), ["--gpu-memory-utilization", str(u_fix)],
                              {"gpu_memory_utilization": u_fix}))
            if e.code == "vllm.mamba.seqs_exceed_blocks" and e.fix:  # one Mamba block per decode sequence
                m = int(e.fix.split("--max-num-seqs ")[1].split()[0])
                if m >= 1:
                    tries.append((f"--max-num-seqs {m} (the Mamba cache blocks: one per decode sequence)",
                                  ("--max-num-seqs",), ["--max-num-seqs", str(m)], {"max_num_seqs": m}))
        if r.extensible_kv_cache:  # 0.34: the estimate-based sizing counts the CUDA graphs once, not twice
            tries.append(("--disable-extensible-kv-cache (the KV cache sized from the profile's estimate as before "
                          "vLLM 0.34: the CUDA graphs are counted once, not again as headroom kept free)",
                          ("--enable-extensible-kv-cache", "--disable-extensible-kv-cache"),
                          ["--disable-extensible-kv-cache"], {"enable_extensible_kv_cache": False}))
        if u_max != u_now and u_max > 0 and not r.extensible_kv_cache:  # the gate's: none with the extensible cache
            # lower where the free-memory gate refuses, higher where it leaves room
            tries.append((f"--gpu-memory-utilization {u_max} (the highest vLLM's start-up free-memory check allows)",
                          ("--gpu-memory-utilization",), ["--gpu-memory-utilization", str(u_max)],
                          {"gpu_memory_utilization": u_max}))
        lens = sorted({n for n in (r.safe_max_model_len, r.estimated_max_model_len) if 0 < n < r.max_model_len})
        if any(e.code == "vllm.kv.max_model_len" for e in r.errors) and q.options.get("max_num_seqs") is None:
            # not one request fits: fewer sequences cost no concurrency, and from 0.20 they capture fewer CUDA graphs
            # inside the budget (vramcalc/vllm/engine.py cudagraph_capture_counts) and shrink the sampler's peak;
            # the context stays as asked
            for m in (r.layout.max_num_seqs // 2, r.layout.max_num_seqs // 4, r.layout.max_num_seqs // 8):
                if m >= 1:
                    tries.append((f"--max-num-seqs {m} (fewer sequences: fewer CUDA graphs and a smaller sampler "
                                  "peak; the context as asked; the graph memory's fall with fewer capture sizes is "
                                  "checked on hybrid-model logs only, not on a dense one)", ("--max-num-seqs",),
                                  ["--max-num-seqs", str(m)],
                                  {"max_num_seqs": m}))
        for n in lens:
            tries.append((f"--max-model-len {n} (the longest that fits)", ("--max-model-len",),
                          ["--max-model-len", str(n)], {"max_model_len": n}))
        cc = gpu.compute_capability
        if q.options.get("kv_cache_dtype", "auto") == "auto" and cc and tuple(map(int, cc.split(".")[:2])) >= (8, 9):
            # FP8 KV where the GPU has FP8 (SM 8.9+); on Ampere vLLM's support depends on the attention backend
            tries.append(("--kv-cache-dtype fp8 (half the KV bytes per token)", ("--kv-cache-dtype",),
                          ["--kv-cache-dtype", "fp8"], {"kv_cache_dtype": "fp8"}))
        ranks = r.layout.tp * r.layout.pp
        # VLLM_PP_LAYER_PARTITION names as many stages as PP: another PP would be refused with it
        for tp in sorted({d for d in range(1, ranks + 1) if ranks % d == 0 and q.options.get("pp_layer_partition") is None}
                         - {r.layout.tp}, reverse=True):
            pp = ranks // tp
            tries.append((f"--tensor-parallel-size {tp} --pipeline-parallel-size {pp} (the same {ranks} GPUs)",
                          VLLM_TP + VLLM_PP, ["--tensor-parallel-size", str(tp), "--pipeline-parallel-size", str(pp)],
                          {"tp": tp, "pp": pp}))
        seqs = r.layout.max_num_seqs
        for n in lens or [r.max_model_len]:
            for m in (seqs // 2, seqs // 4, seqs // 8, seqs // 16, seqs // 32):
                if m >= 1:
                    add = (["--max-model-len", str(n)] if lens else []) + ["--max-num-seqs", str(m)]
                    # the context as asked where no shorter one fits: its flag stays in the command
                    tries.append((" ".join(add) + (" (a shorter context and fewer sequences)" if lens else
                                                   " (fewer sequences; the context as asked)"),
                                  ("--max-model-len", "--max-num-seqs") if lens else ("--max-num-seqs",), add,
                                  {"max_num_seqs": m, **({"max_model_len": n} if lens else {})}))
        graphs = max((d.cuda_graph_bytes for d in r.devices), default=0)
        if graphs and not eager:  # 0.20+: the graph estimate leaves the budget to the KV cache
            tries.append((f"--enforce-eager (no CUDA graphs: their {graphs / 2**30:.2f} GiB per GPU go to the KV cache; "
                          "slower decoding)", ("--enforce-eager",), ["--enforce-eager"], {"enforce_eager": True}))
    else:
        if any(e.code == "llamacpp.kv.mla_kv_types" for e in r.errors):  # V's type set to K's, as the engine asks
            tk = str(q.options.get("type_k", "f16")).lower()
            tries.append((f"-ctv {tk} (the V cache type equal to K's: an MLA model takes one type)",
                          ("-ctv", "--cache-type-v"), ["-ctv", tk], {"type_v": tk}))
        if r.max_ctx is not None and r.max_ctx < r.n_ctx:
            c = r.max_ctx // 256 * 256
            tries.append((f"-c {c} (the largest context that fits with -ngl {r.n_gpu_layers})", ("-c", "--ctx-size"),
                          ["-c", str(c)], {"n_ctx": c}))
        if r.max_gpu_layers is not None and r.max_gpu_layers < r.n_gpu_layers:
            tries.append((f"-ngl {r.max_gpu_layers} (the most layers that fit; the rest on the CPU)",
                          ("-ngl", "--gpu-layers", "--n-gpu-layers"), ["-ngl", str(r.max_gpu_layers)],
                          {"n_gpu_layers": r.max_gpu_layers}))
    if isinstance(r, VLLMResult) and r.extensible_kv_cache:
        # vLLM 0.34 with its extensible KV cache off: that release's estimate-based sizing, then the changes that
        # sizing would need (the flag added to each)
        from dataclasses import replace

        off = {**q.options, "enable_extensible_kv_cache": False}
        try:
            r_off = _run(replace(q, options=off), off, None)
        except VramcalcError:
            return tries
        flag = ("--enable-extensible-kv-cache", "--disable-extensible-kv-cache")
        tries += [(f"--disable-extensible-kv-cache with {why}", flag + drop, ["--disable-extensible-kv-cache", *add],
                   {"enable_extensible_kv_cache": False, **o})
                  for why, drop, add, o in _fix_tries(replace(q, options=off), r_off)]
    return tries


def _first_start(q: Question, tries: list[Try], host_ram_bytes: int | None
                 ) -> tuple[Try, VLLMResult | LlamaResult] | None:
    """The first try the engine model re-checks as starting, with that check."""
    from .engine_checks import ADVICE

    token = ADVICE.set(False)  # each try needs only its verdict
    try:
        for one in tries:
            try:
                res = _run(q, {**q.options, **one[3]}, host_ram_bytes)
            except VramcalcError:
                continue
            if res.fits:
                return one, res
    finally:
        ADVICE.reset(token)
    return None


def plain_fix(engine: Literal["vllm", "llamacpp"], source: Any, system: Any, options: dict[str, Any],
              r: VLLMResult | LlamaResult, host_ram_bytes: int | None) -> tuple[str, str] | None:
    """`vramcalc check MODEL --engine ...` and vramcalc.check(engine=...) refused: the same search as a pasted
    command's, on the check's own options (VLLMOptions' / LlamaOptions' fields, as vramcalc.check takes them), with
    the model as opened and the system as given (None: llama.cpp on the CPU). (why, the engine command at the fix,
    as the engine model prints it for the re-check that starts)."""
    q = Question(engine=engine, model=source.spec.id, system="cpu" if system is None else "", options=dict(options),
                 warnings=[], source=source, system_as=system)
    found = _first_start(q, _fix_tries(q, r), host_ram_bytes)
    return (found[0][0], found[1].command) if found else None


def _smallest_fix(p: Parsed, q: Question, r: VLLMResult | LlamaResult, host_ram_bytes: int | None
                  ) -> tuple[str, str] | None:
    """The command's smallest fix and the command with it: TP over the GPUs it leaves idle, else the first of
    _fix_tries that starts."""
    idle = next((w for w in q.warnings if w.code == "command.idle_gpus"), None)
    if idle is not None and idle.fix and p.gpu_count:  # first: the visible GPUs the command leaves idle
        from dataclasses import replace

        from .systems import parse_system

        tp = p.gpu_count // int(q.options.get("pp", 1))
        whole = replace(q, system=f"{p.gpu_count}x{parse_system(q.system).gpus[0].id}")
        try:
            if _run(whole, {**q.options, "tp": tp}, host_ram_bytes).fits:
                return (f"--tensor-parallel-size {tp} (every visible GPU)",
                        _with(p, VLLM_TP, ["--tensor-parallel-size", str(tp)]))
        except VramcalcError:
            pass
    found = _first_start(q, _fix_tries(q, r), host_ram_bytes)
    return (found[0][0], _with(p, found[0][1], found[0][2])) if found else None


def _gpu_count(p: Parsed, r: Reading) -> int:
    """How many GPUs the command uses when nothing names the GPU: CUDA_VISIBLE_DEVICES / docker --gpus, else
    vLLM's TP x PP, else llama.cpp's -ts entries, else one."""
    if p.gpu_count:
        return p.gpu_count
    o = r.options
    if r.engine == "vllm":
        return int(o.get("tp", 1)) * int(o.get("pp", 1))
    return len(o.get("tensor_split") or []) or 1


def _on_reference_gpus(command: str, host_ram_bytes: int | None) -> CommandResult:
    """No --gpu: the command on each reference GPU (data/planner.json), smallest memory first, at its GPU count;
    the answer is the full check on the first it starts on, or on the largest when it starts on none."""
    from .plan import planner_data

    p, r = read_command(command)
    n = _gpu_count(p, r)
    names = planner_data().reference_gpus
    tried: dict[str, bool] = {}
    chosen = names[-1]
    for name in names:
        s = name if n == 1 or p.gpu_count else f"{n}x{name}"
        _, _, q = question(command, s)
        starts = _run(q, q.options, host_ram_bytes).fits
        tried[q.system] = starts
        if starts:
            chosen = s
            break
    res = check_command(command, chosen, host_ram_bytes)
    said = (f"starts on {res.system}, the smallest of the reference GPUs tried ({', '.join(tried)})" if res.fits else
            f"starts on none of the reference GPUs tried ({', '.join(tried)}); the figures are for {res.system}")
    note = warning("command.no_gpu", f"no --gpu given: {said}", fix="give --gpu SYSTEM for the GPUs you have")
    return res.model_copy(update={"warnings": [note, *res.warnings], "tried_systems": tried})


def check_command(command: str, system: str | None = None, host_ram_bytes: int | None = None) -> CommandResult:
    """The engine's verdict on a command as the user runs it ("vllm serve MODEL --tensor-parallel-size 2 ...",
    "llama-server -m FILE.gguf -ngl 99 ...", "docker run ... vllm/vllm-openai ..."), on `system` as --gpu takes it
    ("4090" with CUDA_VISIBLE_DEVICES=0,1 in the command is 2x4090). Without a system: on the smallest reference
    GPU the command starts on (tried_systems says which were tried). A flag the engine does not have is an
    InputError in the engine's words; one that changes memory in a way vramcalc does not model is named in a
    command.not_modelled warning, and a command that starts without it is not promised to start
    (command.not_modelled_verdict): the figures are those of the command without it. llama-server in router mode
    (no -m, no -hf) is checked child by child (_router_check: the result's router)."""
    try:
        return _check_command(command, system, host_ram_bytes)
    except RouterMode as rm:
        if system and system.strip():
            return _router_check(command, rm, system, host_ram_bytes)
        from .plan import planner_data

        tried: dict[str, bool] = {}
        for name in planner_data().reference_gpus:  # as _on_reference_gpus: the smallest the router starts on
            res = _router_check(command, rm, name, host_ram_bytes)
            tried[res.system] = res.fits
            if res.fits:
                break
        return res.model_copy(update={"tried_systems": tried})


def _check_command(command: str, system: str | None = None, host_ram_bytes: int | None = None) -> CommandResult:
    """check_command less router mode (RouterMode, read by read_command)."""
    if system is None or not system.strip():
        return _on_reference_gpus(command, host_ram_bytes)
    p, r, q = question(command, system)
    res = _run(q, q.options, host_ram_bytes)
    warnings = q.warnings
    if p.refusal is not None:  # the engine refuses the words; the corrected command is checked
        said, at, words = p.refusal
        fixed = _command_line(p, p.args[:at] + words + p.args[at + 1:])
        said_fix = f"{said.fix} (then: {'it starts' if res.fits else 'see the figures below'})"
        return CommandResult(command=command, program=p.program, engine=q.engine, model=q.model, system=q.system,
                             options=q.options, vramcalc_command=_flag_line(q), fits=False,
                             result=res.model_copy(update={"fix": said_fix, "corrected_command": fixed}),
                             no_effect=r.no_effect, warnings=[said, *warnings], fix=said_fix, corrected_command=fixed)
    unmodelled = [w for w in warnings if w.code == "command.not_modelled"]
    if res.fits and unmodelled:  # a flag that changes memory unmodelled: a start is not promised (no false "fits")
        flags = "; ".join(w.text.split(":", 1)[0] for w in unmodelled)
        without = f"without {flags} it starts (vramcalc does not model {flags})"
        res = res.model_copy(update={"fits": False, "fix": without, "errors": [*res.errors, error(
            "command.not_modelled_verdict", f"vramcalc: starts without {flags}, which changes memory in a way "
            "vramcalc does not model, so no promise that the engine starts with it",
            fix=f"run it without {flags}, or try it: the figures above are for the command without it")]})
        return CommandResult(command=command, program=p.program, engine=q.engine, model=q.model, system=q.system,
                             options=q.options, vramcalc_command=_flag_line(q), fits=False, result=res,
                             no_effect=r.no_effect, warnings=warnings, fix=without)
    fix = _smallest_fix(p, q, res, host_ram_bytes) if not res.fits else None
    if fix:  # the result carries it as a plain check's does (printed before the planner's other layouts)
        res = res.model_copy(update={"fix": fix[0], "corrected_command": fix[1]})
    return CommandResult(command=command, program=p.program, engine=q.engine, model=q.model, system=q.system,
                         options=q.options, vramcalc_command=_flag_line(q), fits=res.fits, result=res,
                         no_effect=r.no_effect, warnings=warnings, fix=fix[0] if fix else None,
                         corrected_command=fix[1] if fix else None)
