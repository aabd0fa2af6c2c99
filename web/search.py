"""Entity search for the console: the same answers as ``sync.store.search_entities``
(name, email, domain or remote id, case-insensitive substring), planned for a large store.

Remote ids are matched exactly through the ``external_ref(remote_id, …)`` index rather
than through ``lower(remote_id)`` (a full scan); SQLite's ``LIKE`` is already
case-insensitive for ASCII, so no ``lower()`` per row there (PostgreSQL gets
``ILIKE``); and only the columns the text can be in are scanned: an ``@`` means an
email, a dot without spaces a domain, a space a contact's full name.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from sync import store as st


def _columns(object_type: str, text: str) -> list[str]:
    if "@" in text:
        return ["email"] if object_type == "contact" else []
    if "." in text and " " not in text:
        return {"account": ["name", "domain", "website"], "contact": ["email"],
                "opportunity": ["name"]}.get(object_type, [])
    return {"account": ["name", "domain"], "contact": ["first_name", "last_name", "email"],
            "opportunity": ["name"]}.get(object_type, [])


def search(s: Session, text: str, limit: int = 50) -> list[tuple[str, Any]]:
    """``(object type, row)`` of live entities matching ``text``, remote-id matches first."""
    needle = text.strip()
    if not needle:
        return []
    sqlite = s.get_bind().dialect.name == "sqlite"
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    ref = st.ExternalRefRow
    for ot, cid in s.execute(select(ref.object_type, ref.canonical_id)
                             .where(ref.remote_id.in_({needle, needle.upper(), needle.lower()})).limit(limit)):
        row: Any = s.get(st.ENTITY_TABLES[ot], cid)
        while row is not None and row.merged_into:
            row = s.get(st.ENTITY_TABLES[ot], row.merged_into)
        if row is not None and row.id not in seen:
            seen.add(row.id)
            out.append((ot, row))
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    for ot, t in st.ENTITY_TABLES.items():
        if len(out) >= limit:
            break
        tbl: Any = t
        cols = [getattr(tbl, c) for c in _columns(ot, needle)]
        conds = [c.like(pattern, escape="\\") if sqlite else c.ilike(pattern, escape="\\") for c in cols]
        if ot == "contact" and " " in needle:
            full = tbl.first_name + " " + tbl.last_name
            conds.append(full.like(pattern, escape="\\") if sqlite else full.ilike(pattern, escape="\\"))
        if not conds:
            continue
        q = (select(tbl).where(tbl.merged_into.is_(None), tbl.deleted_at.is_(None), or_(*conds))
             .limit(limit - len(out)))
        for row in s.scalars(q):
            if row.id not in seen:
                seen.add(row.id)
                out.append((ot, row))
    return out[:limit]
