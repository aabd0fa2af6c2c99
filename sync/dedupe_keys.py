"""Tier-1 deterministic match keys, and the prepared feature rows tier 2 compares.

Every function is pure and total: a value that cannot be a key gives ``None`` (never an
exception), so one bad record never stops a match run. The normalisation itself lives in
``mapping.normalize``; this module only decides what may serve as a *key*.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import duckdb
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from connectors.base import RecordError
from mapping.nicknames import NICKNAMES, fold_name, name_forms
from mapping.normalize import (
    ROLE_LOCAL_PARTS,
    company_match_key,
    domain_from_email,
    domain_from_url,
    email_match_key,
    is_free_mail_domain,
    is_role_address,
    normalize_email,
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


# The last digits of a phone number's international form that serve as its key: the
# same number written nationally (``(415) 555-0100``, ``030 901820``) or in E.164 gives
# the same key; numbers that differ only in a country code a writer left out meet too.
PHONE_KEY_DIGITS = 9
# Fewer digits than this is no phone number (a placeholder, an extension alone).
MIN_PHONE_DIGITS = 7
_EXTENSION = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d{1,6}\s*$", re.IGNORECASE)
_NOT_DIGIT = re.compile(r"\D")


@lru_cache(maxsize=1 << 16)
def _phone_key_text(text: str, region: str | None) -> str | None:
    if _E164.match(text):
        digits = text[1:]
    else:
        digits = ""
        try:
            number = phonenumbers.parse(text, (region or "US").upper())
            digits = f"{number.country_code}{number.national_number}"
        except phonenumbers.NumberParseException:
            pass
        if len(digits) < MIN_PHONE_DIGITS:
            digits = _NOT_DIGIT.sub("", _EXTENSION.sub("", text))
    if len(digits) < MIN_PHONE_DIGITS or len(set(digits)) == 1:
        return None
    return digits[-PHONE_KEY_DIGITS:]


def phone_key(value: Any, *, region: str | None = None) -> str | None:
    """The last ``PHONE_KEY_DIGITS`` digits of the number's international form, or None.

    Read from the digits whether or not ``phonenumbers`` calls the number valid (an
    unassigned area code is still the same digits in both records): the E.164 value
    the store holds, else the number as ``phonenumbers`` parses it (``region`` reads a
    national number; an extension is dropped), else the bare digits.
    """
    text = _as_text(value)
    if text is None:
        return None
    return _phone_key_text(text.strip(), region)


# Separators inside a user part (``jo.smith``, ``jo_smith``, ``jo-smith`` are one name;
# Gmail ignores the dots anyway).
_LOCAL_PUNCT = re.compile(r"[._-]")


def email_parts(key: str | None) -> tuple[str | None, str | None, str | None]:
    """(user part without separators, domain, work domain) of an email key; the work
    domain is None for a free-mail domain (a personal address names no employer)."""
    if not key or "@" not in key:
        return None, None, None
    local, _, domain = key.rpartition("@")
    local = _LOCAL_PUNCT.sub("", local)
    return local or None, domain or None, (domain if domain and not _free_domain(domain) else None)


@lru_cache(maxsize=1 << 14)
def _free_domain(domain: str) -> bool:
    try:
        return is_free_mail_domain(domain)
    except ValueError:
        return True


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


_NOT_SLUG = re.compile(r"[^a-z0-9]")


def company_slug(company: str | None) -> str | None:
    """A company key with everything but ASCII letters and digits dropped (``meridian
    nova`` → ``meridiannova``): what a company's mail domain is usually made of."""
    return _NOT_SLUG.sub("", company) or None if company else None


def email_org(work_domain: str | None) -> str | None:
    """The first label of a work mail domain (``meridiannova.io`` → ``meridiannova``)."""
    return work_domain.split(".", 1)[0] or None if work_domain else None


def contact_features(record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns the contact model compares, from canonical contact fields plus ``id``.

    Optional inputs beyond ``mapping.canonical.Contact``: ``company`` (the account's
    name) and ``website``; ``account_id`` is used as the company when no name is given.
    """
    first = person_name_key(record.get("first_name"))
    last = person_name_key(record.get("last_name"))
    email = email_key(record.get("email"))
    local, domain, work_domain = email_parts(email)
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
        "email_local": local,
        "email_domain": domain,
        "email_work_domain": work_domain,
        "phone": phone_key(record.get("phone"), region=_opt_str(record.get("country"))),
        "company": company,
        "company_slug": company_slug(company),
        "email_org": email_org(work_domain),
        "title": text_key(record.get("title")),
        "city": text_key(record.get("city")),
        "state": text_key(record.get("state")),
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
        "city": text_key(record.get("billing_city")),
        "state": text_key(record.get("billing_state")),
        "industry": text_key(record.get("industry")),
        "country": _opt_str(record.get("country")),
    }


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# --------------------------------------------------------------------------- feature tables
#
# The same features, built column by column for a whole input (a million records in a
# few seconds instead of a minute): each raw field becomes one Arrow column; fields with
# few distinct values (names, companies, titles) go through the Python key functions
# once per distinct value; emails and phones (one distinct value per record) are
# decided in DuckDB SQL where the value is already plain, and by the Python functions
# above, once per distinct value, where it is not. The per-record functions stay the
# reference: tests/sync/test_dedupe_features.py checks both paths agree.

# (connection, records, table name): creates that table of the records' features, in
# input order, with an extra ``rn`` column (the record's position).
FeatureTable = Callable[[duckdb.DuckDBPyConnection, Sequence[Mapping[str, Any]], str], None]

# ASCII addresses already in the plain form ``email_key`` takes without a full parse.
_SQL_PLAIN_EMAIL = r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_SQL_E164 = r"\+[1-9][0-9]{6,14}"
_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def _column(records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    return [r.get(name) for r in records]


def _strings(values: list[Any]) -> pa.Array | None:
    """``values`` as an Arrow string column, or None when some value is not a str."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
        return None


def _per_distinct(
    values: list[Any], fn: Callable[[Any], Any], out_type: pa.DataType | None = None
) -> pa.Array:
    """``[fn(v) for v in values]``, calling ``fn`` once per distinct value (None → None)."""
    out_type = out_type or pa.string()
    strings = _strings(values)
    if strings is not None:
        return _per_distinct_string(strings, fn, out_type)
    cache: dict[Any, Any] = {}  # ints, UUIDs …: a Python pass, cached per hashable value
    out = []
    for value in values:
        try:
            result = cache[(type(value), value)]  # the type too: True == 1 == 1.0
        except KeyError:
            result = cache[(type(value), value)] = fn(value)
        except TypeError:  # unhashable
            result = fn(value)
        out.append(result)
    return pa.array(out, type=out_type)


def _per_distinct_string(
    strings: pa.Array, fn: Callable[[Any], Any], out_type: pa.DataType | None = None
) -> pa.Array:
    """``fn`` over an Arrow string column, once per distinct value (null → null)."""
    encoded = pc.dictionary_encode(strings)
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], type=out_type or pa.string())
    return pc.take(mapped, encoded.indices)


def _decided_by_python(
    con: duckdb.DuckDBPyConnection, table: str, column: str, undecided: str, name: str,
    fn: Callable[..., str | None], args: Sequence[str] = (),
) -> None:
    """Table ``name`` (the raw values …, key): ``fn`` over the distinct raw values SQL leaves."""
    cols = ", ".join([column, *args])
    rows = con.execute(
        f"SELECT DISTINCT {cols} FROM {table} WHERE {column} IS NOT NULL AND NOT ({undecided})"
    ).fetchall()
    keys = [fn(*row) for row in rows]
    arrays = [pa.array([row[i] for row in rows], type=pa.string()) for i in range(1 + len(args))]
    lookup = pa.table([*arrays, pa.array(keys, type=pa.string())], names=[column, *args, "key"])
    con.register(f"{name}_arrow", lookup)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


def _email_sql(column: str) -> tuple[str, list[str], str]:
    """(condition: SQL decides this value; stages: helper columns, each stage may use the
    ones before; expression: the value's ``email_key``). Stages keep each part computed
    once (DuckDB does not share subexpressions across CASE branches)."""
    decided = f"(regexp_full_match({column}, {_sql_str(_SQL_PLAIN_EMAIL)}) AND NOT contains({column}, '..'))"
    stages = [
        f"lower({column}) AS e_low",
        "split_part(split_part(e_low, '@', 1), '+', 1) AS e_local, split_part(e_low, '@', 2) AS e_domain",
        f"e_domain IN {_sql_list(_GMAIL_DOMAINS)} AS e_gmail",
        "CASE WHEN e_gmail THEN replace(e_local, '.', '') ELSE e_local END AS e_key_local,"
        " CASE WHEN e_gmail THEN 'gmail.com' ELSE e_domain END AS e_key_domain",
        "e_key_local || '@' || e_key_domain AS e_key",
    ]
    expr = (
        f"CASE WHEN e_local IN {_sql_list(ROLE_LOCAL_PARTS)}"
        f" OR e_key_domain IN {_sql_list(PLACEHOLDER_DOMAINS)}"
        f" OR e_key IN {_sql_list(PLACEHOLDER_EMAILS)} THEN NULL ELSE e_key END"
    )
    return decided, stages, expr


def _sql_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(_sql_str(v) for v in sorted(values)) + ")"


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _phone_sql(column: str) -> tuple[str, str]:
    """(condition: the value is E.164 already, expression: its ``phone_key``)."""
    key = f"right(substr({column}, 2), {PHONE_KEY_DIGITS})"
    return (
        f"regexp_full_match({column}, {_sql_str(_SQL_E164)})",
        f"CASE WHEN replace(substr({column}, 2), substr({column}, 2, 1), '') = '' THEN NULL ELSE {key} END",
    )


def _keys_table(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table,
    name: str,
    select: str,
    lookups: Sequence[tuple[str, str, Callable[..., str | None], Sequence[str]]],
    stages: Sequence[str] = (),
) -> None:
    """``CREATE TABLE name AS SELECT select FROM raw`` with the email/phone look-ups joined.

    ``lookups``: (raw column, SQL-decided condition, Python key function, extra args).
    In ``select``, ``k_<column>`` is the Python key of a value SQL did not decide.
    ``stages`` add helper columns, one nested SELECT each.
    """
    con.register(f"{name}_raw", raw)
    try:
        joins = []
        for column, decided, fn, args in lookups:
            lookup = f"{name}_py_{column}"
            _decided_by_python(con, f"{name}_raw", column, decided, lookup, fn, args)
            on = " AND ".join(
                f"t.{c} IS NOT DISTINCT FROM {lookup}.{c}" if c != column else f"t.{c} = {lookup}.{c}"
                for c in (column, *args)
            )
            joins.append(f"LEFT JOIN {lookup} ON {on}")
        renames = ", ".join(f"{name}_py_{c}.key AS k_{c}" for c, *_ in lookups)
        source = f"SELECT t.*, {renames} FROM {name}_raw AS t {' '.join(joins)}"
        for stage in stages:
            source = f"SELECT *, {stage} FROM ({source})"
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {select} FROM ({source}) ORDER BY rn")
    finally:
        con.unregister(f"{name}_raw")
        for column, *_ in lookups:
            con.execute(f"DROP TABLE IF EXISTS {name}_py_{column}")
    duplicate = con.execute(
        f"SELECT unique_id FROM {name} GROUP BY unique_id HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if duplicate is not None:
        con.execute(f"DROP TABLE {name}")
        raise ValueError(f"duplicate record id {duplicate[0]!r}")


def _ids(records: Sequence[Mapping[str, Any]]) -> pa.Array:
    return pa.array([str(r["id"]) for r in records], type=pa.string())


def _raw_strings(records: Sequence[Mapping[str, Any]], name: str, fallback: Callable[[Any], Any]) -> pa.Array:
    """A raw field for SQL: as it is when every value is a str, else through ``fallback``."""
    values = _column(records, name)
    strings = _strings(values)
    return strings if strings is not None else _per_distinct(values, fallback)


def _first_forms(first: str | None) -> list[str] | None:
    return list(name_forms(first)) if first else None


def contact_feature_table(
    con: duckdb.DuckDBPyConnection, records: Sequence[Mapping[str, Any]], name: str
) -> None:
    """Table ``name`` in ``con``: ``contact_features`` of every record, column-wise."""
    first = _per_distinct(_column(records, "first_name"), person_name_key)
    raw = pa.table(
        {
            "rn": pa.array(range(len(records)), type=pa.int64()),
            "unique_id": _ids(records),
            "first_name": first,
            "last_name": _per_distinct(_column(records, "last_name"), person_name_key),
            "first_forms": _per_distinct_string(first, _first_forms, pa.list_(pa.string())),
            "first_block": _per_distinct_string(first, first_name_block),
            "email": _raw_strings(records, "email", _as_text),
            "phone": _raw_strings(records, "phone", _as_text),
            "region": _per_distinct(_column(records, "country"), _opt_str),
            "company_key": _per_distinct(_column(records, "company"), company_key),
            "account_id": _per_distinct(_column(records, "account_id"), _opt_str),
            "title": _per_distinct(_column(records, "title"), text_key),
            "city": _per_distinct(_column(records, "city"), text_key),
            "state": _per_distinct(_column(records, "state"), text_key),
        }
    )
    email_decided, email_stages, email_expr = _email_sql("email")
    phone_decided, phone_expr = _phone_sql("phone")
    select = f"""
        rn, unique_id, first_name, last_name, first_forms, first_block,
        CASE WHEN first_name IS NOT NULL AND last_name IS NOT NULL
             THEN first_name || ' ' || last_name END AS full_name,
        CASE WHEN first_name IS NOT NULL AND last_name IS NOT NULL
             THEN first_block || ' ' || last_name END AS name_block,
        CASE WHEN {email_decided} THEN {email_expr} ELSE k_email END AS email,
        CASE WHEN {phone_decided} THEN {phone_expr} ELSE k_phone END AS phone,
        coalesce(company_key, account_id) AS company,
        nullif(regexp_replace(coalesce(company_key, account_id), '[^a-z0-9]', '', 'g'), '') AS company_slug,
        title, city, state
    """
    _keys_table(
        con, raw, name, select,
        [("email", email_decided, email_key, ()), ("phone", phone_decided, _phone_key_in, ("region",))],
        email_stages,
    )  # fmt: skip
    _add_email_parts(con, name)


def _add_email_parts(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """``email_local``, ``email_domain``, ``email_work_domain`` (``email_parts``) and
    ``email_org`` of table
    ``name``'s ``email`` column; the free-mail test runs once per distinct domain."""
    domains = [d for (d,) in con.execute(
        f"SELECT DISTINCT split_part(email, '@', 2) FROM {name} WHERE email IS NOT NULL").fetchall()]
    lookup = pa.table({"d": pa.array(domains, type=pa.string()),
                       "free": pa.array([_free_domain(d) if d else True for d in domains], type=pa.bool_())})
    con.register(f"{name}_free", lookup)
    try:
        con.execute(f"""
            CREATE OR REPLACE TABLE {name} AS
            SELECT t.*, nullif(regexp_replace(split_part(t.email, '@', 1), '[._-]', '', 'g'), '') AS email_local,
                   nullif(split_part(t.email, '@', 2), '') AS email_domain,
                   CASE WHEN NOT coalesce(f.free, true) THEN nullif(split_part(t.email, '@', 2), '') END
                       AS email_work_domain,
                   CASE WHEN NOT coalesce(f.free, true)
                        THEN nullif(split_part(split_part(t.email, '@', 2), '.', 1), '') END AS email_org
            FROM {name} AS t LEFT JOIN {name}_free AS f ON f.d = split_part(t.email, '@', 2)
            ORDER BY t.rn""")
    finally:
        con.unregister(f"{name}_free")


def account_feature_table(
    con: duckdb.DuckDBPyConnection, records: Sequence[Mapping[str, Any]], name: str
) -> None:
    """Table ``name`` in ``con``: ``account_features`` of every record, column-wise."""
    domain_or_site = [r.get("domain") or r.get("website") for r in records]
    raw = pa.table(
        {
            "rn": pa.array(range(len(records)), type=pa.int64()),
            "unique_id": _ids(records),
            "name": _per_distinct(_column(records, "name"), company_key),
            "domain": _per_distinct(domain_or_site, company_domain),
            "phone": _raw_strings(records, "phone", _as_text),
            "region": _per_distinct(_column(records, "country"), _opt_str),
            "street": _per_distinct(_column(records, "billing_street"), text_key),
            "postcode": _per_distinct(_column(records, "billing_postal_code"), postcode_key),
            "city": _per_distinct(_column(records, "billing_city"), text_key),
            "state": _per_distinct(_column(records, "billing_state"), text_key),
            "industry": _per_distinct(_column(records, "industry"), text_key),
        }
    )
    phone_decided, phone_expr = _phone_sql("phone")
    select = f"""
        rn, unique_id, name, domain,
        CASE WHEN {phone_decided} THEN {phone_expr} ELSE k_phone END AS phone,
        street, postcode, city, state, industry, region AS country
    """
    _keys_table(con, raw, name, select, [("phone", phone_decided, _phone_key_in, ("region",))])


def _as_text(value: Any) -> str | None:
    """An email or phone as text, as the key functions read a non-str (``normalize_string``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    return str(value)


def _phone_key_in(value: str, region: str | None) -> str | None:
    return phone_key(value, region=region)
