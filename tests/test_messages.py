"""Every refusal and warning is a typed Message whose code is registered (vramcalc.messages.CODES), and the code,
not the text, is what callers branch on."""

import json
import re
from pathlib import Path

import pydantic
import pytest

from vramcalc.cli import main
from vramcalc.messages import CODES, Message, codes, error, warning

SRC = Path(__file__).parent.parent / "vramcalc"
# a quoted dotted name under one of the registry's namespaces: a message code in the source
CODE_LITERAL = re.compile(r"""["']((?:%s)\.[a-z0-9_]+(?:\.[a-z0-9_]+)*)["']"""
                          % "|".join(sorted({c.split(".")[0] for c in CODES})))


def _code_literals() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path.name != "messages.py":
            found |= set(CODE_LITERAL.findall(path.read_text()))
    return {c for c in found if not c.endswith(".json")}  # data file names (vllm.json) are not codes


def test_every_code_in_the_source_is_registered_and_every_registered_code_is_used():
    used = _code_literals()
    assert used - set(CODES) == set()
    assert set(CODES) - used == set()


def test_codes_are_dotted_and_each_has_a_meaning():
    for code, meaning in CODES.items():
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", code), code
        assert meaning and "\n" not in meaning


def test_an_unregistered_code_is_refused():
    with pytest.raises(pydantic.ValidationError):
        Message(code="vllm.no_such_thing", level="error", text="x")
    m = error("vllm.kv.no_memory", "No available memory", fix="raise --gpu-memory-utilization")
    assert str(m) == "No available memory" and codes([m, warning("gpu.note", "n")]) == {"vllm.kv.no_memory", "gpu.note"}


def test_json_messages_are_objects_and_the_text_output_prints_their_words(capsys):
    argv = ["check", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm", "--ctx", "8192",
            "--gpu-memory-utilization", "1.0", "--engine-version", "0.33.0"]
    assert main(argv + ["--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    e = r["errors"][0]
    assert e["code"] == "vllm.startup.free_memory" and e["level"] == "error" and e["fix"]
    assert e["text"].startswith("Free memory on device cuda:0 (")
    assert main(argv) == 1
    assert f"error   {e['text']}\n" in capsys.readouterr().out
