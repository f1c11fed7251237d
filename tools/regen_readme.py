"""Rewrite the output under every ```console `$ vramcalc ...` example in README.md with the real
output of that command (tests/test_readme.py checks they match).

    python tools/regen_readme.py
"""

import contextlib
import io
import re
import shlex
from pathlib import Path

from vramcalc.cli import main

path = Path(__file__).parent.parent / "README.md"
text = path.read_text()


def run(m: re.Match) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(shlex.split(m.group(1))[1:])
    return f"```console\n$ {m.group(1)}\n{out.getvalue().rstrip()}\n```"


path.write_text(re.sub(r"```console\n\$ (vramcalc [^\n]+)\n(.*?)```", run, text, flags=re.S))
