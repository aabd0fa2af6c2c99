"""Account hierarchies: the checks a parent must pass before it is decided.

An account's parent (``account.parent_id``, a canonical account id) is reconciled like
any field (``sync.reconcile``). A decided parent is then refused, never stored nor
written, when it would break the hierarchy:

- ``self``: the account would be its own parent;
- ``cycle``: the account is an ancestor of its new parent (A → B → A);
- ``missing``: the parent does not exist (a remote id no record of ours carries, or a
  deleted account).

Each refusal leaves the account's current parent as it is and writes one entry to the
error ledger (direction ``hierarchy``, category ``validation``), resolved once the
systems agree on a parent that passes.

A parent removed in one system is a real change, although a blank never overwrites a
filled value (``never_blank``). A connector that read a record's parent field and found
none reports an empty ``parent`` association; a record that had a parent (as last read,
or as revsync last wrote it) keeps that empty ``parent`` (``with_removal``), which
reconcile counts as a claim of "no parent" (``removed_parent``) and the plan then
removes everywhere. A record that never had a parent (new, or in a system the parent
did not reach yet), or whose parent field was not read, claims nothing, so it cannot
take a parent away.

The check functions (``chain``, ``refusal``) are pure; ``load_parents`` and
``ledger_refusal`` are the store side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sync import store as st

#: a chain longer than this is taken as broken (a cycle already in the store)
MAX_DEPTH = 64
#: error-ledger direction of hierarchy refusals
DIRECTION = "hierarchy"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a parent was refused: ``kind`` is ``self``, ``cycle`` or ``missing``."""

    kind: str
    message: str


def with_removal(old: Mapping[str, Any] | None, new: dict[str, list[str]]) -> dict[str, list[str]]:
    """A record's associations as stored: an empty ``parent`` (the connector read the
    parent field and it names none) is kept only when the record had a parent before
    (it was removed in that system); otherwise it is dropped (no claim). A record whose
    connector did not read its parent at all (no ``parent`` key) claims nothing either."""
    if "parent" in new and not new["parent"] and not (old or {}).get("parent"):
        del new["parent"]
    return new


def removed_parent(associations: Mapping[str, Any] | None) -> bool:
    """Whether a record's associations say its parent was removed (``with_removal``)."""
    return associations is not None and "parent" in associations and not associations["parent"]


def chain(cid: str, parents: Mapping[str, str | None], limit: int = MAX_DEPTH) -> list[str]:
    """``cid`` and its ancestors, root first (stops at a repeat or after ``limit`` steps)."""
    out, seen, cur = [cid], {cid}, parents.get(cid)
    while cur is not None and cur not in seen and len(out) < limit:
        out.append(cur)
        seen.add(cur)
        cur = parents.get(cur)
    return out[::-1]


def refusal(cid: str, parent: str | None, parents: Mapping[str, str | None],
            exists: Callable[[str], bool]) -> Refusal | None:
    """Why ``parent`` cannot be the parent of ``cid`` (None: it can). ``parents`` maps
    an account to its current parent; ``exists`` says whether an account is live."""
    if parent is None:
        return None
    if parent == cid:
        return Refusal("self", f"account {cid} cannot be its own parent")
    if not exists(parent):
        return Refusal("missing", f"parent account {parent} of {cid} does not exist (unknown or deleted)")
    path, cur, seen = [parent], parents.get(parent), {parent}
    while cur is not None and cur not in seen and len(path) < MAX_DEPTH:
        path.append(cur)
        if cur == cid:
            loop = " → ".join([cid, *path])
            return Refusal("cycle", f"parent {parent} of {cid} would make a cycle: {loop}")
        seen.add(cur)
        cur = parents.get(cur)
    return None


def load_parents(s: Any, ids: Iterable[str]) -> tuple[dict[str, str | None], set[str]]:
    """The stored parent of each account in ``ids`` and of all their ancestors, and
    which of them are live (not deleted, not merged away)."""
    t = st.AccountRow
    parents: dict[str, str | None] = {}
    live: set[str] = set()
    frontier = {i for i in ids if i}
    for _ in range(MAX_DEPTH):
        todo = sorted(frontier - parents.keys())
        if not todo:
            break
        frontier = set()
        for i in range(0, len(todo), 500):
            for rid, parent, deleted, merged in s.execute(
                select(t.id, t.parent_id, t.deleted_at, t.merged_into).where(t.id.in_(todo[i : i + 500]))
            ):
                parents[rid] = parent
                if deleted is None and merged is None:
                    live.add(rid)
                if parent:
                    frontier.add(parent)
        for missing in set(todo) - parents.keys():
            parents[missing] = None  # no such account: a dead end
    return parents, live


def ledger_refusal(s: Any, system: str | None, remote_id: str | None, cid: str, why: Refusal,
                   now: datetime, run_id: int | None) -> None:
    """One open error-ledger entry per refused account (bumped while it stays refused)."""
    st.record_error(s, system=system or "revsync", object_type="account", native_type=None,
                    remote_id=remote_id, canonical_id=cid, direction=DIRECTION, category="validation",
                    message=f"parent refused ({why.kind}): {why.message}", field="parent_id", payload=None,
                    now=now, run_id=run_id)


def resolve_refusals(s: Any, cids: list[str]) -> None:
    """Close the open refusals of these accounts (their parent now passes)."""
    if not cids:
        return
    from sqlalchemy import update

    t = st.ErrorLedgerRow
    for i in range(0, len(cids), 500):
        s.execute(update(t).where(t.object_type == "account", t.direction == DIRECTION, t.state == "open",
                                  t.canonical_id.in_(cids[i : i + 500])).values(state="resolved"))


def chain_of(s: Any, cid: str) -> list[dict[str, Any]]:
    """The account's chain for ``revsync explain``: root first, then each parent, then
    the account itself, with names."""
    parents, _ = load_parents(s, [cid])
    ids = chain(cid, parents)
    names = dict(s.execute(select(st.AccountRow.id, st.AccountRow.name).where(st.AccountRow.id.in_(ids))).all())
    return [{"id": i, "name": names.get(i)} for i in ids]


def summary(s: Any) -> dict[str, int]:
    """Accounts under a parent, the deepest chain, and open refusals (demo, status)."""
    from sqlalchemy import func

    t = st.AccountRow
    rows = dict(s.execute(select(t.id, t.parent_id).where(t.parent_id.is_not(None), t.deleted_at.is_(None),
                                                          t.merged_into.is_(None))).all())
    depth = max((len(chain(c, rows)) for c in rows), default=1 if rows else 0)
    e = st.ErrorLedgerRow
    refused = s.scalar(select(func.count()).select_from(e).where(e.direction == DIRECTION, e.state == "open")) or 0
    return {"with_parent": len(rows), "deepest": depth, "refused": int(refused)}
