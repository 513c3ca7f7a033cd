"""A byte-budgeted least-recently-used tile cache (GUI-thread only; no locking needed)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class TileCache:
    """Maps tile keys to decoded images, evicting the least recently used beyond `budget_bytes`.

    Each entry carries its own byte size (the caller knows it: `QImage.sizeInBytes()`), so the budget is
    honest for edge tiles and mixed tile sizes.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"cache budget must be > 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> Any | None:
        """The cached value (marked most recently used), or None."""
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[0]

    def peek(self, key: Hashable) -> Any | None:
        """The cached value without touching its recency or the hit counters."""
        item = self._items.get(key)
        return None if item is None else item[0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        """Insert or replace an entry, then evict old entries until the budget holds."""
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old[1]
        self._items[key] = (value, int(nbytes))
        self._bytes += int(nbytes)
        self._evict()

    def set_budget(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"cache budget must be > 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._evict()

    def _evict(self) -> None:
        while self._bytes > self.budget_bytes and len(self._items) > 1:
            _, (_, n) = self._items.popitem(last=False)
            self._bytes -= n
            self.evictions += 1

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
