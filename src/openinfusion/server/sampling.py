"""Bounded audit of floods (C-19): the first refusal per key and window is audited, the
rest only counted, and the count goes into the next audited entry. An attacker sending
thousands of unauthenticated requests cannot make the server write thousands of entries,
and the trail still says how many there were."""

from __future__ import annotations

import threading
from datetime import datetime


class AuditSampler:
    def __init__(self, window_s: float = 10.0, max_keys: int = 10_000) -> None:
        self.window_s, self.max_keys = window_s, max_keys
        self._last: dict[str, datetime] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: str, now: datetime) -> int | None:
        """None: do not audit (counted). Otherwise audit, noting the returned number of
        refusals suppressed for this key since its last audited one."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and (now - last).total_seconds() < self.window_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            if len(self._last) >= self.max_keys:  # forget the oldest half
                for old in sorted(self._last, key=self._last.__getitem__)[: self.max_keys // 2]:
                    self._last.pop(old, None)
                    self._suppressed.pop(old, None)
            self._last[key] = now
            return self._suppressed.pop(key, 0)
