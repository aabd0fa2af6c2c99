"""Tier-1 deterministic match keys, and the prepared feature rows tier 2 compares.

Every function is pure and total: a value that cannot be a key gives ``None`` (never an
exception), so one bad record never stops a match run. The normalisation itself lives in
``mapping.normalize``; this module only decides what may serve as a *key*.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from connectors.base import RecordError
from mapping.nicknames import NICKNAMES, fold_name, name_forms
from mapping.normalize import (
    company_match_key,
    domain_from_email,
    domain_from_url,
    email_match_key,
    is_free_mail_domain,
    is_role_address,
    normalize_email,
    normalize_phone,
)

# Addresses people type when a form insists on one: never a key, whatever the local part.
PLACEHOLDER_EMAILS: frozenset[str] = frozenset(
    {
        "test@test.com", "test@example.com", "a@a.com", "a@b.com", "x@x.com",
        "no@email.com", "none@none.com", "na@na.com", "email@email.com",
        "noemail@noemail.com", "null@null.com", "asdf@asdf.com", "fake@fake.com",
    }
)  # fmt: skip
# Domains reserved for documentation and tests (RFC 2606 / RFC 6761): never keys.
PLACEHOLDER_DOMAINS: frozenset[str] = frozenset(
    {"example.com", "example.org", "example.net", "test.com", "invalid", "localhost"}
)


# Already-normalised values (what the store holds) skip the full parse: it dominates a
# million-record run otherwise.
_PLAIN_EMAIL = re.compile(r"^[a-z0-9._%+'-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def email_key(value: Any) -> str | None:
    """The email match key (lowercase, trimmed, plus-tag and Gmail dots folded), or None.

    Role mailboxes (info@, noreply@, sales@ …) and placeholders (test@test.com,
    anything @example.com) are never keys: many people share them.
    """
    email: str | None = value.strip().lower() if isinstance(value, str) else None
    if email is None or not _PLAIN_EMAIL.match(email) or ".." in email:
        try:
            email = normalize_email(value)
        except (RecordError, ValueError):
            return None
    if email is None:
        return None
    try:
        if is_role_address(email):
            return None
        key = email_match_key(email)
    except ValueError:
        return None
    domain = key.rpartition("@")[2]
    if key in PLACEHOLDER_EMAILS or domain in PLACEHOLDER_DOMAINS:
        return None
    return key


def phone_key(value: Any, *, region: str | None = None) -> str | None:
    """The phone number in E.164 (``+14155550100``), or None when it cannot be read.

    A value already in E.164 is taken as it is (the store holds phones normalised).
    """
    if isinstance(value, str) and _E164.match(value):
        return value
    try:
        return normalize_phone(value, region=region)
    except (RecordError, ValueError):
        return None


@lru_cache(maxsize=1 << 16)
def company_domain(website: Any = None, email: Any = None) -> str | None:
    """A company's registrable domain from its website, else from an email address.

    Scheme, ``www.``, subdomains and path are dropped. Free-mail domains (gmail.com …)
    and placeholder domains are never company keys.
    """
    domain: str | None = None
    try:
        domain = domain_from_url(website) if website else None
    except (RecordError, ValueError):
        domain = None
    if domain is None and email:
        try:
            addr = normalize_email(email)
            domain = domain_from_email(addr) if addr else None
        except (RecordError, ValueError):
            domain = None
    if domain is None or domain in PLACEHOLDER_DOMAINS or is_free_mail_domain(domain):
        return None
    return domain


@lru_cache(maxsize=1 << 16)
def company_key(name: Any) -> str | None:
    """A company name folded for matching (legal suffixes, case, accents dropped), or None."""
    if not isinstance(name, str) or not name.strip():
        return None
    return company_match_key(name) or None


_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1 << 16)
def text_key(value: Any) -> str | None:
    """Free text folded for comparison: accents dropped, casefolded, spaces collapsed."""
    if not isinstance(value, str):
        return None
    decomposed = unicodedata.normalize("NFKD", value)
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    text = _SPACES.sub(" ", re.sub(r"[^\w\s]", " ", text)).strip()
    return text or None


@lru_cache(maxsize=1 << 16)
def person_name_key(value: Any) -> str | None:
    """A first or last name folded to letters only (``"O'Neil"`` → ``"oneil"``), or None."""
    if not isinstance(value, str):
        return None
    return fold_name(value) or None


@lru_cache(maxsize=1 << 16)
def first_name_block(value: Any) -> str | None:
    """A blocking key under which a nickname and its formal name meet (Bob, Robert → robert)."""
    key = person_name_key(value)
    if key is None:
        return None
    formal = [f for f in name_forms(key) if f in NICKNAMES]
    return min(formal) if formal else key


@lru_cache(maxsize=1 << 16)
def postcode_key(value: Any) -> str | None:
    """A postal code without spaces or punctuation, uppercased."""
    if value is None:
        return None
    text = re.sub(r"[^0-9A-Za-z]", "", str(value)).upper()
    return text or None


# --------------------------------------------------------------------------- feature rows


def contact_features(record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns the contact model compares, from canonical contact fields plus ``id``.

    Optional inputs beyond ``mapping.canonical.Contact``: ``company`` (the account's
    name) and ``website``; ``account_id`` is used as the company when no name is given.
    """
    first = person_name_key(record.get("first_name"))
    last = person_name_key(record.get("last_name"))
    email = email_key(record.get("email"))
    company = company_key(record.get("company")) or _opt_str(record.get("account_id"))
    return {
        "unique_id": str(record["id"]),
        "first_name": first,
        "last_name": last,
        "first_forms": list(name_forms(first)) if first else None,
        "first_block": first_name_block(first),
        "full_name": f"{first} {last}" if first and last else None,
        "name_block": f"{first_name_block(first)} {last}" if first and last else None,
        "email": email,
        "phone": phone_key(record.get("phone"), region=_opt_str(record.get("country"))),
        "company": company,
        "title": text_key(record.get("title")),
    }


def account_features(record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns the account model compares, from canonical account fields plus ``id``."""
    return {
        "unique_id": str(record["id"]),
        "name": company_key(record.get("name")),
        "domain": company_domain(record.get("domain") or record.get("website")),
        "phone": phone_key(record.get("phone"), region=_opt_str(record.get("country"))),
        "street": text_key(record.get("billing_street")),
        "postcode": postcode_key(record.get("billing_postal_code")),
        "industry": text_key(record.get("industry")),
        "country": _opt_str(record.get("country")),
    }


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
