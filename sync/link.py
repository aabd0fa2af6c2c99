"""Link: tier-1 identity for the new records of a page.

Every new remote record is linked to a canonical entity by a deterministic key
before a new entity is made:

1. the revsync id the record carries (``Revsync_Id__c`` / ``revsync_id`` / Planhat
   ``externalId`` or ``sourceId``): the entity with that id, or the one it was merged
   into; an id the store does not know (a lost store, an old backup, a new database)
   is adopted: the entity is made under that id, so identity lives in the systems;
2. a cross-system id (e.g. Planhat ``sourceId`` holding the Salesforce Id);
3. contact: email match key (never a role address); account: registrable domain
   (never a free-mail domain; a parent and its subsidiaries may share one, so
   the domain key never links a subsidiary into its parent, see ``pick_account``);
   opportunity: same canonical account and same name.

The dedupe issue adds probabilistic matching behind ``LinkHook``. Pull calls
``Linker`` inside the transaction of the page it links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from connectors import registry
from connectors.base import RecordError, RemoteRecord
from mapping import normalize
from mapping.canonical import ObjectType, new_id
from sync import store as st
from sync.views import Mapped

#: fields our writes carry the canonical id in, per connector (``Connector.key_field``)
EXTERNAL_ID_FIELDS: Mapping[str, str] = registry.Registered(
    lambda classes: {k: c.key_field for k, c in classes.items() if c.key_field}
)
#: where a record may carry its revsync id, per connector (the first UUID wins;
#: ``Connector.revsync_id_fields``)
REVSYNC_ID_FIELDS: Mapping[str, tuple[str, ...]] = registry.Registered(
    lambda classes: {k: c.revsync_id_fields for k, c in classes.items()}
)
#: the field plan writes the entity's id into when a linked record lacks it
#: (``Connector.stamp_field``)
STAMP_FIELDS: Mapping[str, str] = registry.Registered(
    lambda classes: {k: c.stamp_field for k, c in classes.items() if c.stamp_field}
)
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: how far apart two systems' close dates may be for one opportunity (account + name
#: key) when their amounts agree; with another amount (or none) the close dates must be
#: the same day. One account's deals often share a name (a yearly renewal): tier 1 keys
#: only the unmistakable copies, tier 2's scorer weighs the doubtful ones.
OPP_CLOSE_WINDOW_DAYS = 120


class LinkHook(Protocol):
    """Seam for probabilistic matching (dedupe): canonical id for a new record, or None."""

    def __call__(self, s: Any, object_type: ObjectType, view: Mapping[str, Any]) -> str | None: ...


class LinkSource(Protocol):
    """What the linker needs of the puller it links for."""

    name: str
    ext_field: str
    link_hook: LinkHook | None

    def carried_id(self, rec: RemoteRecord) -> str | None: ...

    def run_started(self, s: Any) -> datetime | None: ...


def _ext_value(fields: Mapping[str, Any], name: str) -> str:
    """The external-id field's value as text; "" when it is hostile text (NUL, control
    characters, a lone surrogate): no id of ours, and no database would take it."""
    text = str(fields.get(name) or "")
    return "" if normalize.safe_text(text, limit=len(text) + 1) != text else text


class Linker:
    """Tier-1 deterministic linking for the new records of one page."""

    def __init__(self, p: LinkSource, s: Any, object_type: ObjectType, fresh: list[Mapped], now: datetime) -> None:
        self.p, self.s, self.object_type, self.now = p, s, object_type, now
        ot = object_type.value
        carried = [c for m in fresh if (c := p.carried_id(m.rec))]
        # carried id → the live entity holding it (itself, or the one it was merged into)
        self.explicit = st.resolve_entity_ids(s, ot, carried)
        ext_values = [_ext_value(m.rec.fields, p.ext_field) for m in fresh]
        self.xref = st.refs_for_remote_ids_any_system(s, ot, [v for v in ext_values if v and not UUID_RE.match(v)])
        self.email: dict[str, str] = {}
        # domain → the accounts holding it ({id, name, sub}), oldest first
        self.domain: dict[str, list[dict[str, Any]]] = {}
        self.opps: dict[str, list[dict[str, Any]]] = {}
        self.account_of: dict[tuple[str, str], str] = {}
        self.anchored: set[str] = set()  # entities of this page a record carries the id of
        if object_type is ObjectType.CONTACT:
            self.email = st.contacts_by_email_key(s, [k for m in fresh if (k := email_key(m.view))])
        elif object_type is ObjectType.ACCOUNT:
            self.domain = st.account_candidates_by_domain(s, [d for m in fresh if (d := _account_domain(m.view))])
        elif object_type is ObjectType.OPPORTUNITY:
            acc_rids = [rid for m in fresh for rid in m.rec.associations.get("account", ())]
            self.account_of = st.refs_for_remote_ids_any_system(s, "account", acc_rids)
            self.opps = st.opportunities_by_account(s, list(self.account_of.values()))

    def link(self, m: Mapped) -> tuple[str, str]:
        p = self.p
        carried = p.carried_id(m.rec)
        if carried:
            known = self.explicit.get(carried)
            if known:
                return known, "external_id"
            return self._adopt(m, carried)
        ext = _ext_value(m.rec.fields, p.ext_field)
        if ext and not UUID_RE.match(ext):
            for (system, rid), cid in self.xref.items():
                if rid == ext and system != p.name:
                    return cid, "xref"
        if p.link_hook is not None:
            hooked = p.link_hook(self.s, self.object_type, m.view)
            if hooked:
                return hooked, "match"
        found = self._by_key(m)
        if found is not None:
            return found
        return self._new(m), "new"

    def _adopt(self, m: Mapped, carried: str) -> tuple[str, str]:
        """A record carrying a revsync id the store does not know (a lost store, an old
        backup, a new database): its entity is made under that id. If a record without
        an id was linked by a key to an entity made in this run that no record carries
        the id of, that entity takes the carried id (the order records are read in must
        not decide identity)."""
        found = self._by_key(m, claim=False)
        if found is not None and self._renamable(found[0]):
            old = found[0]
            st.rename_entity(self.s, self.object_type.value, old, carried)
            self._renamed(old, carried)
            self.explicit[carried] = carried
            self.anchored.add(carried)
            if self.object_type is ObjectType.OPPORTUNITY:
                self._by_key(m)  # count this system among the opportunity's
            return carried, "external_id"
        self._new(m, carried)
        self.explicit[carried] = carried
        self.anchored.add(carried)
        return carried, "adopted"

    def _renamable(self, cid: str) -> bool:
        if cid in self.anchored:
            return False
        started = self.p.run_started(self.s)
        return started is not None and st.entity_is_unanchored_since(self.s, self.object_type.value, cid, started)

    def _renamed(self, old: str, new: str) -> None:
        for k, v in list(self.email.items()):
            if v == old:
                self.email[k] = new
        for cands in self.domain.values():
            for cand in cands:
                if cand["id"] == old:
                    cand["id"] = new
        for k2, v2 in list(self.account_of.items()):
            if v2 == old:
                self.account_of[k2] = new
        for cands in self.opps.values():
            for cand in cands:
                if cand["id"] == old:
                    cand["id"] = new

    def _by_key(self, m: Mapped, *, claim: bool = True) -> tuple[str, str] | None:
        """The entity a deterministic key names, with the key's rule, or None.
        ``claim``: an opportunity counts this system among its records."""
        p, ot = self.p, self.object_type
        if ot is ObjectType.CONTACT:
            key = email_key(m.view)
            if key and key in self.email:
                return self.email[key], "email"
            return None
        if ot is ObjectType.ACCOUNT:
            dom = _account_domain(m.view)
            if dom and dom in self.domain:
                found = pick_account(self.domain[dom], m.view.get("name"),
                                     sub=bool(m.rec.associations.get("parent")))
                if found is not None:
                    return found, "domain"
            return None
        # opportunity: same canonical account and same name, from another system (two
        # records of one system sharing a name are usually distinct deals), the same
        # close date, or the same amount and close dates within OPP_CLOSE_WINDOW_DAYS
        # (or either date blank); the nearest close date and amount win
        name_key = _name_key(m.view.get("name"))
        account_cid = self._account_cid(m)
        close = _as_date(m.view.get("close_date"))
        amount = _as_decimal(m.view.get("amount"))
        if account_cid and name_key:
            best = None
            for cand in self.opps.get(account_cid, []):
                if _name_key(cand["name"]) != name_key or p.name in cand["systems"]:
                    continue
                same_amount = amount is not None and cand["amount"] is not None and amount == cand["amount"]
                days = abs((close - cand["close_date"]).days) if close and cand["close_date"] else 0
                if days > (OPP_CLOSE_WINDOW_DAYS if same_amount else 0) or (
                        not same_amount and not (close and cand["close_date"])):
                    continue  # doubtful: tier 2's scorer decides
                gap = abs(amount - cand["amount"]) / max(abs(amount), 1) if amount is not None and \
                    cand["amount"] is not None else Decimal(0)
                score = (days, gap)
                if best is None or score < best[0]:
                    best = (score, cand)
            if best is not None:
                if claim:
                    best[1]["systems"].add(p.name)
                return best[1]["id"], "account_name"
        return None

    def _account_cid(self, m: Mapped) -> str | None:
        return next(
            (self.account_of[(self.p.name, rid)] for rid in m.rec.associations.get("account", ())
             if (self.p.name, rid) in self.account_of),
            None,
        )

    def _new(self, m: Mapped, cid: str | None = None) -> str:
        """A new entity for ``m`` (under ``cid``, or a fresh id), findable by its keys."""
        ot = self.object_type
        cid = cid or new_id()
        if ot is ObjectType.CONTACT:
            key = email_key(m.view)
            st.add_entity(self.s, ot.value, cid, self.now, email=m.view.get("email"), email_key=key)
            if key:
                self.email.setdefault(key, cid)
            return cid
        if ot is ObjectType.ACCOUNT:
            dom = _account_domain(m.view)
            st.add_entity(self.s, ot.value, cid, self.now, name=m.view.get("name"), domain=dom)
            if dom:
                self.domain.setdefault(dom, []).append(
                    {"id": cid, "name": m.view.get("name"), "sub": bool(m.rec.associations.get("parent"))})
            return cid
        account_cid = self._account_cid(m)
        close = _as_date(m.view.get("close_date"))
        amount = _as_decimal(m.view.get("amount"))
        st.add_entity(self.s, ot.value, cid, self.now, name=m.view.get("name"), account_id=account_cid,
                      close_date=close, amount=amount)
        if account_cid:
            self.opps.setdefault(account_cid, []).append(
                {"id": cid, "name": m.view.get("name"), "close_date": close, "amount": amount,
                 "systems": {self.p.name}})
        return cid


def pick_account(cands: list[dict[str, Any]], name: Any, *, sub: bool) -> str | None:
    """The account a domain key links a record to, among the accounts holding that
    domain (oldest first). A parent and its subsidiaries may share a domain and are
    still distinct companies. The account of the same name (legal forms aside) wins.
    Else a record naming a parent (a subsidiary) is not linked by the domain; any
    other record takes the oldest account that is not a subsidiary, or the one
    subsidiary that owns the domain (a copy held where the hierarchy is not)."""
    key = normalize.company_match_key(str(name)) if name else None
    if key:
        for c in cands:
            if c["name"] and normalize.company_match_key(str(c["name"])) == key:
                return str(c["id"])
    subs = [str(c["id"]) for c in cands if c["sub"]]
    roots = [str(c["id"]) for c in cands if not c["sub"]]
    if sub:
        return None
    if roots:
        return roots[0]
    return subs[0] if len(subs) == 1 else None


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _as_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except ArithmeticError:
        return None


def email_key(view: Mapping[str, Any]) -> str | None:
    email = view.get("email")
    if not email or normalize.is_role_address(email):
        return None
    return normalize.email_match_key(email)


def _account_domain(view: Mapping[str, Any]) -> str | None:
    dom = view.get("domain")
    if not dom and view.get("website"):
        try:
            dom = normalize.domain_from_url(view["website"])
        except RecordError:
            dom = None
    if not dom or normalize.is_free_mail_domain(dom):
        return None
    return str(dom)


def _name_key(name: Any) -> str | None:
    if not name:
        return None
    return " ".join(re.sub(r"[^\w]+", " ", str(name).casefold()).split()) or None

