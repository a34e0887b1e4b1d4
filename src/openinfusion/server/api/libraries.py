"""Drug libraries: publish a pharmacist-signed package (verified, audited) and list them."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select

from openinfusion.errors import InputError
from openinfusion.library.diff import LibraryDiff, diff_libraries
from openinfusion.library.signing import package_bytes, unverified_library
from openinfusion.server import libraries
from openinfusion.server.api.deps import Principal, get_ctx, require
from openinfusion.server.api.errors import not_found
from openinfusion.server.clock import iso
from openinfusion.server.context import ServerContext
from openinfusion.server.models import PublishedLibrary
from openinfusion.server.permissions import Perm

router = APIRouter(prefix="/api/libraries", tags=["libraries"])
Version = Annotated[str, Path(pattern=r"^[0-9]+(\.[0-9]+){0,3}$")]


def library_view(row: PublishedLibrary) -> dict[str, Any]:
    return {
        "version": row.version,
        "name": row.name,
        "sha256": row.sha256,
        "key_id": row.key_id,
        "signer": row.signer,
        "signed_at": row.signed_at,
        "published_by": row.published_by,
        "published_at": iso(row.published_at),
    }


def _publish(ctx: ServerContext, raw: bytes, username: str) -> dict[str, Any]:
    now = ctx.now()
    try:
        trusted = libraries.pharmacy_keys(ctx.settings.data_dir, ctx.server_key_id)
        verified = libraries.verify_upload(raw, trusted, now)
        with ctx.db.write() as session:
            libraries.check_newer(session, verified.library.version)
            row = libraries.store(session, verified, raw, username, now)
            ctx.audit(
                session,
                username,
                "library.publish",
                f"library:{row.version}",
                sha256=row.sha256,
                key_id=row.key_id,
                signer=row.signer,
            )
            return library_view(row)
    except InputError as exc:
        ctx.audit_alone(username, "library.rejected", "library", error=exc.as_dict())
        raise


@router.post("", status_code=201)
async def publish_library(
    request: Request,
    p: Principal = Depends(require(Perm.LIBRARIES_PUBLISH)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    raw = await request.body()
    return await asyncio.to_thread(_publish, ctx, raw, p.username)


@router.get("")
def list_libraries(
    _p: Principal = Depends(require(Perm.LIBRARIES_READ)), ctx: ServerContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        rows = session.scalars(select(PublishedLibrary).order_by(PublishedLibrary.id))
        return [library_view(r) for r in rows]


@router.get("/{version}")
def get_library(
    version: Version,
    _p: Principal = Depends(require(Perm.LIBRARIES_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = session.scalars(
            select(PublishedLibrary).where(PublishedLibrary.version == version)
        ).first()
        if row is None:
            raise not_found("version", version)
        return dict(library_view(row), package=row.package)


@router.get("/{old}/diff/{new}")
def diff_library_versions(
    old: Version,
    new: Version,
    _p: Principal = Depends(require(Perm.LIBRARIES_READ)),
    ctx: ServerContext = Depends(get_ctx),
) -> dict[str, Any]:
    """What changed from published version ``old`` to ``new`` (entries, care areas, limits),
    for pharmacist review: the same diff as ``openinfusion library diff``."""
    with ctx.db.read() as session:
        rows = {
            r.version: r
            for r in session.scalars(
                select(PublishedLibrary).where(PublishedLibrary.version.in_((old, new)))
            )
        }
    for field, version in (("old", old), ("new", new)):
        if version not in rows:
            raise not_found(field, version)
    before = unverified_library(package_bytes(rows[old].package))
    after = unverified_library(package_bytes(rows[new].package))
    diff = diff_libraries(before, after)
    return {"old": old, "new": new, **diff.as_dict(), "changes": _change_lines(diff)}


def _change_lines(diff: LibraryDiff) -> list[dict[str, Any]]:
    """The diff as one flat list for display: kind (added/removed/changed), what, and for a
    changed field its path with the old and new values."""
    lines: list[dict[str, Any]] = [
        {"kind": "changed", "entry": "library", "field": c.path, "old": c.old, "new": c.new}
        for c in diff.header
    ]
    for label, added, removed, changed in (
        ("care area", diff.care_areas_added, diff.care_areas_removed, diff.care_areas_changed),
        ("entry", diff.entries_added, diff.entries_removed, diff.entries_changed),
    ):
        lines += [{"kind": "added", "entry": f"{label} {k}"} for k in added]
        lines += [{"kind": "removed", "entry": f"{label} {k}"} for k in removed]
        lines += [
            {"kind": "changed", "entry": f"{label} {item.key}", "field": c.path,
             "old": c.old, "new": c.new}
            for item in changed
            for c in item.changes
        ]  # fmt: skip
    return lines
