"""The README's examples are the program's real output."""

import re
import shlex
from pathlib import Path

import pytest

from vramcalc.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()
EXAMPLES = re.findall(r"```console\n\$ (vramcalc [^\n]+)\n(.*?)```", README, re.S)


def test_readme_has_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("command,expected", EXAMPLES, ids=[c for c, _ in EXAMPLES])
def test_readme_example_output_is_current(capsys, command, expected):
    main(shlex.split(command)[1:])
    assert capsys.readouterr().out.rstrip() == expected.rstrip()


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    command = "python3 -m pip install '.[test]' && python3 -m pytest -q"
    assert command in README and command in ci


PYTHON = re.findall(r"```python\n(.*?)```(?:\n\n```text\n(.*?)```)?", README, re.S)


def test_readme_has_a_python_api_section():
    assert "## Python API" in README and any("engine=\"vllm\"" in code for code, _ in PYTHON)


@pytest.mark.parametrize("code,expected", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_readme_python_runs_and_prints_what_it_shows(capsys, code, expected):
    exec(compile(code, "README.md", "exec"), {})
    if expected:
        assert capsys.readouterr().out.rstrip() == expected.rstrip()


def test_readme_counts_the_catalog_as_it_is():
    """The README's 'offline catalog of N real configs' is the number of bundled config files."""
    (n,) = re.findall(r"offline catalog of (\d+) real configs", " ".join(README.split()))
    models = Path(__file__).parent.parent / "vramcalc" / "data" / "models"
    assert int(n) == len(list(models.glob("*.json")))
