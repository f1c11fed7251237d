"""Memos bounded by a size estimate, not by a count of entries: what an entry holds grows with the spec it was
asked about (its layers), so a memo keeps at most `budget` units (limits.MEMO_LAYERS layers) and forgets the
least recently used entries beyond it. The newest entry is always kept, however large, so a caller asking
about one very large spec again and again still finds it; twenty such specs do not pile up."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

from .limits import MEMO_LAYERS

V = TypeVar("V")


class Memo(Generic[V]):
    def __init__(self, budget: int = MEMO_LAYERS) -> None:
        self.budget = budget
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self.weight = 0  # the units held
        self._lock = threading.Lock()  # a library may be called from several threads: get/put are read-modify-write

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V, weight: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._entries[key] = (value, weight)
            self.weight += weight
            while self.weight > self.budget and len(self._entries) > 1:
                _, (_, w) = self._entries.popitem(last=False)
                self.weight -= w

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.weight = 0

    def __len__(self) -> int:
        return len(self._entries)


def layers_weight(n_layers: int) -> int:
    """The size estimate of an entry about a spec of n layers (one unit for what does not grow with them)."""
    return n_layers + 1
