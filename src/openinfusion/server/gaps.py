"""Missing sequence numbers of a pump as sorted, disjoint, inclusive ranges ``[lo, hi]``.

Kept incrementally as envelopes are stored, so ``GET /api/pumps`` never scans messages.
"""

from __future__ import annotations

Ranges = list[list[int]]


def note_stored(gaps: Ranges, last_seq: int, seq: int) -> tuple[Ranges, int]:
    """The gaps and highest seq after storing ``seq`` (not stored before)."""
    if seq > last_seq:
        out = [list(r) for r in gaps]
        if seq > last_seq + 1:
            out.append([last_seq + 1, seq - 1])
        return out, seq
    out = []
    for lo, hi in gaps:
        if lo <= seq <= hi:
            if lo < seq:
                out.append([lo, seq - 1])
            if seq < hi:
                out.append([seq + 1, hi])
        else:
            out.append([lo, hi])
    return out, last_seq


def missing_count(gaps: Ranges) -> int:
    return sum(hi - lo + 1 for lo, hi in gaps)


def as_display(gaps: Ranges) -> list[int | list[int]]:
    """Single missing seqs as numbers, longer runs as ``[lo, hi]``."""
    return [lo if lo == hi else [lo, hi] for lo, hi in gaps]


def contiguous_until(gaps: Ranges, last_seq: int) -> int:
    """Highest n such that every seq 1..n is stored: what a pump may forget (welcome)."""
    return min(lo for lo, _ in gaps) - 1 if gaps else last_seq
