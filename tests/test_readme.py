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
