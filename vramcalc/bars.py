"""A device's memory as one line of text: weights, KV cache, engine workspace and what is free.
Colour only on a terminal that wants it: never when NO_COLOR is set (https://no-color.org), when
TERM is dumb, or when the output is not a terminal."""

from __future__ import annotations

import os
import sys
from typing import TextIO

WIDTH = 40
# (label, fill character, ANSI colour)
SEGMENTS = {"weights": ("#", "34"), "KV": ("=", "32"), "workspace": ("~", "33"), "free": (".", "2")}


def use_color(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def bar(parts: list[tuple[str, int]], capacity: int, color: bool = False) -> str:
    """parts: (segment, bytes) in order; the free part is what capacity leaves. Past capacity the
    bar ends in '!' marks, one per 1/WIDTH of the capacity over (at most 10)."""
    used = sum(max(0, b) for _, b in parts)
    scale = WIDTH / capacity if capacity > 0 else 0
    cells: list[str] = []
    out: list[str] = []
    filled = 0.0
    for name, b in parts:
        filled += max(0, b) * scale
        n = min(WIDTH, round(filled)) - len(cells)
        cells += [name] * max(0, n)
    cells += ["free"] * (WIDTH - len(cells))
    for name in cells:
        ch, code = SEGMENTS[name]
        out.append(f"\x1b[{code}m{ch}\x1b[0m" if color else ch)
    over = "" if used <= capacity else "!" * min(10, max(1, round((used - capacity) * scale)))
    return "[" + "".join(out) + "]" + over


LEGEND = "# weights  = KV cache  ~ engine workspace  . free"
