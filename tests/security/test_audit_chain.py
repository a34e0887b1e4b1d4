"""C-21: the audit chain detects deletion, modification, reordering and truncation."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from openinfusion.security import (
    Anchor,
    AuditEntry,
    chain_entry,
    generate_private_key,
    sign_anchor,
    verify_anchor,
    verify_chain,
)


def build(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    previous = None
    for i in range(n):
        previous = chain_entry(
            previous,
            f"2026-12-03T08:00:{i % 60:02d}Z",
            f"user{i % 3}",
            "login",
            f"user:{i}",
            {"i": i, "ok": i % 2 == 0},
        )
        entries.append(previous)
    return entries


def anchor_of(entries: list[AuditEntry]) -> Anchor:
    return Anchor(entries[-1].seq, entries[-1].hash)


def test_intact_chain_verifies() -> None:
    entries = build(10)
    report = verify_chain(entries, anchor_of(entries))
    assert report.ok and report.checked == 10 and report.head_seq == 10
    assert verify_chain([]).ok


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 25), data=st.data())
def test_c21_delete_any_entry_detected(n: int, data: st.DataObject) -> None:
    entries = build(n)
    victim = data.draw(st.integers(0, n - 1))
    tampered = entries[:victim] + entries[victim + 1 :]
    report = verify_chain(tampered, anchor_of(entries))
    assert not report.ok
    assert report.first_bad_seq == victim + 1
    assert report.problem in {"missing", "truncated"}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 25), data=st.data())
def test_c21_modify_any_field_detected(n: int, data: st.DataObject) -> None:
    entries = build(n)
    victim = data.draw(st.integers(0, n - 1))
    change = data.draw(st.sampled_from(["ts", "actor", "action", "object", "details"]))
    new_value: object = {"forged": True} if change == "details" else "forged"
    entries[victim] = dataclasses.replace(entries[victim], **{change: new_value})
    report = verify_chain(entries, anchor_of(entries))
    assert not report.ok
    assert report.first_bad_seq == victim + 1
    assert report.problem == "modified"


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 25), data=st.data())
def test_c21_reorder_detected(n: int, data: st.DataObject) -> None:
    entries = build(n)
    i = data.draw(st.integers(0, n - 2))
    entries[i], entries[i + 1] = entries[i + 1], entries[i]
    report = verify_chain(entries)
    assert not report.ok
    assert report.first_bad_seq == i + 1
    assert report.problem in {"missing", "reordered"}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 25), data=st.data())
def test_c21_truncation_detected_with_anchor(n: int, data: st.DataObject) -> None:
    entries = build(n)
    keep = data.draw(st.integers(0, n - 1))
    report = verify_chain(entries[:keep], anchor_of(entries))
    assert not report.ok
    assert report.problem == "truncated"
    assert report.first_bad_seq == keep + 1


def test_c21_recomputed_chain_caught_by_signed_anchor() -> None:
    """An attacker who rewrites an entry and recomputes every later hash still fails the
    anchor, which only the server key can sign."""
    entries = build(5)
    key = generate_private_key()
    anchor = anchor_of(entries)
    signature = sign_anchor(key, anchor)
    assert verify_anchor(key.public_key(), anchor, signature)
    forged: list[AuditEntry] = []
    previous = None
    for e in entries:
        actor = "mallory" if e.seq == 3 else e.actor
        previous = chain_entry(previous, e.ts, actor, e.action, e.object, e.details)
        forged.append(previous)
    assert verify_chain(forged).ok  # the chain alone cannot tell
    report = verify_chain(forged, anchor)
    assert not report.ok and report.problem == "modified"
    assert not verify_anchor(key.public_key(), anchor_of(forged), signature)
