"""The per-device bar, and colour only where it is wanted (NO_COLOR, TERM=dumb, pipes)."""

import os
import pty
import subprocess
import sys

from vramcalc.bars import WIDTH, bar


def test_bar_is_proportional_and_marks_overflow():
    assert bar([("weights", 50), ("KV", 25)], 100) == "[" + "#" * 20 + "=" * 10 + "." * 10 + "]"
    assert bar([("weights", 30), ("workspace", 5), ("KV", 60)], 100).count(".") == 2
    over = bar([("weights", 150)], 100)
    assert over.startswith("[" + "#" * WIDTH + "]") and over.endswith("!" * 10)


def _cli_on_a_terminal(env_extra: dict) -> str:
    """The CLI's stdout when it is a real pseudo-terminal."""
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env.update({"TERM": "xterm", **env_extra})
    p = subprocess.Popen([sys.executable, "-m", "vramcalc", "check", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192"],
                         stdout=child, stderr=subprocess.PIPE, env=env)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=60)
    os.close(main)
    return out.decode()


def test_colour_on_a_terminal_and_never_with_no_color_or_a_dumb_terminal(capsys):
    assert "\x1b[34m#" in _cli_on_a_terminal({})
    assert "\x1b[" not in _cli_on_a_terminal({"NO_COLOR": "1"})
    assert "\x1b[" not in _cli_on_a_terminal({"TERM": "dumb"})
    from vramcalc.cli import main

    main(["check", "llama-3.1-8b", "--gpu", "rtx4090", "--ctx", "8192"])  # not a terminal: plain text
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "[######" in out
