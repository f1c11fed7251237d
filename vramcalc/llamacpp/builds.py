"""Which llama.cpp build a figure is for: --llamacpp-build placed against each PR of data/llamacpp_builds.json
that changed a buffer's rule. The engine asks `has(pr)` and follows the rule before or after that PR."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..data_files import load
from ..data_models import LlamaBuildChange, LlamaBuilds
from ..errors import NotModelledError

_RELEASE = re.compile(r"^b?(\d{1,5})$")
_DATE = re.compile(r"^\d{4}-\d{2}(?:-\d{2})?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class LlamaBuild:
    label: str  # the build the figures are for, as reported
    merged: frozenset[int]  # the PRs (of data/llamacpp_builds.json) the build holds
    # speed_only / growth_only PRs the build cannot be placed against: counted as lacking (not in merged), never
    # refused
    unplaced: frozenset[int] = frozenset()

    def has(self, pr: int) -> bool:
        return pr in self.merged


def builds_data() -> LlamaBuilds:
    return load("llamacpp_builds.json", LlamaBuilds)


def _cmp(day: str, bound: str) -> int:
    """-1 / 0 / 1: `day` before / within / after `bound`, at the coarser of their precisions."""
    n = min(len(day), len(bound))
    return (day[:n] > bound[:n]) - (day[:n] < bound[:n])


def _by_date(day: str, c: LlamaBuildChange) -> bool | None:
    lo, hi = c.dated or c.after, c.dated or c.by
    if hi is not None and _cmp(day, hi) > 0:
        return True
    if lo is not None and _cmp(day, lo) < 0:
        return False
    return None  # the build's date falls where the merge may be: not placed


def _lacking(c: LlamaBuildChange, data: LlamaBuilds) -> list[int]:
    """The anchors' releases known to lack the PR: of a date before its merge (or below its first release)."""
    lo = c.dated or c.after
    out = [a.release for a in data.anchors if a.date is not None and lo is not None and _cmp(a.date, lo) < 0]
    return out + ([c.first_release - 1] if c.first_release is not None else [])


def _holding(c: LlamaBuildChange, data: LlamaBuilds) -> list[int]:
    """The anchors' releases known to hold the PR: of a date after its merge (or its first release)."""
    hi = c.dated or c.by
    out = [a.release for a in data.anchors
           if a.not_before is not None and hi is not None and _cmp(a.not_before, hi) > 0]
    return out + ([c.first_release] if c.first_release is not None else [])


def _by_release(n: int, c: LlamaBuildChange, data: LlamaBuilds) -> bool | None:
    """A release holds the PR from its first release on; without one recorded, a release at or above one known to
    hold it holds it, one at or below one known to lack it lacks it, and one between is not placed."""
    if c.first_release is not None:
        return n >= c.first_release
    if any(n >= r for r in _holding(c, data)):
        return True
    if any(n <= r for r in _lacking(c, data)):
        return False
    return None


def _window(c: LlamaBuildChange, data: LlamaBuilds) -> str:
    """Where the PR's first release lies, as far as data/llamacpp_builds.json bounds it."""
    if c.first_release is not None:
        return f"first release b{c.first_release}"
    lack, hold = _lacking(c, data), _holding(c, data)
    lo = f"b{max(lack) + 1}" if lack else "?"
    hi = f"b{min(hold)}" if hold else "?"
    return f"first release not recorded: between {lo} and {hi}"


def resolve_build(build: str, unplaced_as_modelled: bool = False) -> LlamaBuild:
    """latest, the modelled commit (or a prefix of 7+), a release (b4351 or 4351) or a master build's date
    (YYYY-MM or YYYY-MM-DD). NotModelledError names the PR a build cannot be placed against, or the oldest
    PR when it predates them all (the rules before it are not modelled). unplaced_as_modelled (the replay of
    logs, benchmarks/llamacpp_dev.py): a PR the build cannot be placed against follows the modelled build's
    rule instead, named in the label; a build older than the oldest PR is still refused. A speed_only PR (a speed
    term's era, data/speed.json llamacpp_vulkan_eras) or growth_only PR (llamacpp/checkpoints.py) the build cannot
    be placed against counts as lacking, with or without unplaced_as_modelled (the slower, older or larger figure),
    and is named in `unplaced`."""
    data = builds_data()
    b = build.strip().lower()
    everything = frozenset(c.pr for c in data.changes)
    if b in ("", "latest") or (_COMMIT.match(b) and data.modelled.startswith(b)):
        return LlamaBuild(data.modelled, everything)
    if m := _RELEASE.match(b):
        n = int(m.group(1))
        placed = {c.pr: _by_release(n, c, data) for c in data.changes}
        label = f"b{n}"
    elif _DATE.match(b):
        placed = {c.pr: _by_date(b, c) for c in data.changes}
        label = f"master of {b}"
    elif _COMMIT.match(b):
        raise NotModelledError(f"llama.cpp commit {build}: only the modelled commit {data.modelled} is known by "
                               "hash; pass the build's release tag (bNNNN, as llama-server --version prints) or its "
                               "date (YYYY-MM-DD)")
    else:
        raise NotModelledError(f"llama.cpp build {build!r}: expected latest, a release tag such as b4351, a commit "
                               "or a date YYYY-MM-DD")
    oldest = data.changes[-1]
    if placed[oldest.pr] is False:
        raise NotModelledError(f"llama.cpp build {build}: older than PR #{oldest.pr} ({oldest.url}), the oldest "
                               "rule change modelled; the builds before it are not (data/llamacpp_builds.json)")
    speed_unplaced = frozenset(c.pr for c in data.changes if (c.speed_only or c.growth_only) and placed[c.pr] is None)
    placed.update({pr: False for pr in speed_unplaced})
    unplaced = [c for c in data.changes if placed[c.pr] is None]
    soft = [c for c in unplaced if c.host_split_only and not unplaced_as_modelled]
    if soft:  # rules that split the host's buffers only: the modelled build's, said in the label
        label += " (as the modelled build for the host buffer split of PR " + ", ".join(f"#{c.pr}" for c in soft) + ")"
        placed.update({c.pr: True for c in soft})
        unplaced = [c for c in unplaced if c not in soft]
    if unplaced and unplaced_as_modelled:
        label += " (as the modelled build for PR " + ", ".join(f"#{c.pr}" for c in unplaced) + ")"
        placed.update({c.pr: True for c in unplaced})
    elif unplaced:
        raise NotModelledError(
            f"llama.cpp build {build}: cannot tell whether it holds "
            + ", ".join(f"PR #{c.pr} ({c.dated or f'merged {c.after} to {c.by}'}"
                        + f", {_window(c, data)})"
                        for c in unplaced)
            + (" (pass the build's date, YYYY-MM-DD)" if label.startswith("b") else "")
            + "; data/llamacpp_builds.json")
    return LlamaBuild(label, frozenset(pr for pr, v in placed.items() if v), speed_unplaced)
