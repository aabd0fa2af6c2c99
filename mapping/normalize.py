"""Normalizers: one clean form per kind of value, shared by every system's field map.

Each normalizer takes a raw native value and returns the canonical form, ``None`` for
an empty value, or raises ``RecordError`` naming ``field`` when the value cannot be
understood. The field map turns that into an *unreadable field* (raw value and reason
kept, the rest of the record read as usual): a bad value is never guessed at, and it
never costs its record. ``clean_text`` is the text hygiene every value passes first
(control characters removed, lone surrogates and undecodable bytes refused).
Everything here is pure and offline: the public-suffix list is the snapshot bundled
with ``tldextract`` (never fetched), country codes and names (with their translations)
come from ``pycountry``'s bundled ISO 3166 data, plus the other spellings of the locale
names bundled with ``phonenumbers`` and a compact table of informal aliases.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from typing import Any

import phonenumbers
import tldextract
from email_validator import EmailNotValidError, validate_email

from connectors.base import ErrorCategory, RecordError

__all__ = [
    "FREE_MAIL_DOMAINS",
    "ROLE_LOCAL_PARTS",
    "blank",
    "clean_text",
    "company_match_key",
    "country_name",
    "domain_from_email",
    "domain_from_url",
    "email_match_key",
    "is_free_mail_domain",
    "is_role_address",
    "normalize_bool",
    "normalize_country",
    "normalize_date",
    "normalize_datetime",
    "normalize_decimal",
    "normalize_email",
    "normalize_int",
    "normalize_phone",
    "normalize_string",
    "offline_extractor",
    "phone_extension",
    "plain_decimal",
    "printable",
    "safe_text",
    "sanitize",
]

DEFAULT_PHONE_REGION = "US"


def _bad(field: str | None, what: str, value: Any) -> RecordError:
    """A ``RecordError`` naming the field and the offending value."""
    name = field or "value"
    return RecordError(
        f"{name}: cannot read {value!r} as {what}",
        category=ErrorCategory.VALIDATION,
        field=field,
    )


def blank(value: Any) -> bool:
    """True for ``None``, empty or whitespace-only strings and empty containers."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict | set):
        return not value
    return False


# --------------------------------------------------------------------------- text hygiene

# C0 controls except tab, newline and carriage return; DEL; C1 controls; the byte-order
# mark (a stray U+FEFF at the start of a CSV export's first cell).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\ud800-\udfff]")
#: raw values kept in the ledger and the store are cut to this many characters
RAW_LIMIT = 200


def clean_text(text: str, *, field: str | None = None) -> tuple[str, str | None]:
    """``(clean text, note)``: control characters and NUL removed (``note`` says how
    many; None when nothing changed). A lone UTF-16 surrogate (``"\\udc80"``, e.g. from a
    JSON escape, or an undecodable byte kept by ``surrogateescape``) cannot be stored
    or sent anywhere as UTF-8 → ``RecordError``; a surrogate *pair* is joined into the
    character it encodes."""
    if not _UNSAFE.search(text):
        return text, None
    if _SURROGATE.search(text):
        try:
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            lone = _SURROGATE.search(text)
            code = f"U+{ord(lone.group(0)):04X}" if lone else "a surrogate"
            raise RecordError(
                f"{field or 'value'}: {printable(text)} holds a lone surrogate ({code}): "
                "not valid Unicode text",
                category=ErrorCategory.VALIDATION,
                field=field,
            ) from None
    cleaned, removed = _CONTROL.subn("", text)
    if not removed:
        return cleaned, None
    return cleaned, f"removed {removed} control character(s)"


def sanitize(value: Any, *, field: str | None = None) -> tuple[Any, str | None]:
    """``clean_text`` for any raw value: text, bytes (must be UTF-8) and the text
    inside lists and objects. Returns ``(value, note)``; raises ``RecordError``."""
    if isinstance(value, str):
        return clean_text(value, field=field)
    if isinstance(value, bytes | bytearray):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError(
                f"{field or 'value'}: {printable(value)} is not UTF-8 text",
                category=ErrorCategory.VALIDATION,
                field=field,
            ) from None
        return clean_text(text, field=field)
    notes: list[str] = []
    if isinstance(value, list | tuple):
        items = []
        for item in value:
            clean, note = sanitize(item, field=field)
            items.append(clean)
            if note:
                notes.append(note)
        return type(value)(items), "; ".join(notes) or None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            clean_key, key_note = sanitize(key, field=field) if isinstance(key, str) else (key, None)
            clean, note = sanitize(item, field=field)
            out[clean_key] = clean
            notes.extend(x for x in (key_note, note) if x)
        return out, "; ".join(notes) or None
    return value, None


def safe_text(text: str, limit: int = RAW_LIMIT) -> str:
    """``text`` with control characters, NUL and lone surrogates as ``\\uXXXX`` escapes
    (so it encodes as UTF-8 and stores in any database), cut to ``limit`` characters."""
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} chars)"
    return text


def printable(value: Any, limit: int = RAW_LIMIT) -> str:
    """A raw value as safe text to keep and show: its ``repr`` through ``safe_text``."""
    return safe_text(repr(value), limit)


def normalize_string(value: Any, *, field: str | None = None) -> str | None:
    """Strip surrounding whitespace; empty → None. Non-strings are rejected."""
    if blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _bad(field, "text", value)
    return str(value).strip()


# --------------------------------------------------------------------------- email

# Local parts that name a function, not a person (matched before any "+tag").
ROLE_LOCAL_PARTS: frozenset[str] = frozenset(
    {
        "abuse", "accounts", "admin", "administrator", "billing", "contact", "careers",
        "devnull", "enquiries", "feedback", "finance", "hello", "help", "hostmaster",
        "hr", "info", "inquiries", "jobs", "mail", "marketing", "media", "no-reply",
        "no_reply", "noreply", "do-not-reply", "donotreply", "office", "orders",
        "postmaster", "press", "privacy", "sales", "security", "service", "support",
        "team", "test", "webmaster",
    }
)  # fmt: skip

# Domains of free mailbox providers: a person's address there says nothing about
# their company, so it must never feed account matching. ``gmx.*`` and friends are
# matched on the registrable name whatever the suffix (see ``is_free_mail_domain``).
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk",
        "hotmail.fr", "hotmail.de", "live.com", "msn.com", "yahoo.com", "yahoo.co.uk",
        "yahoo.fr", "yahoo.de", "ymail.com", "icloud.com", "me.com", "mac.com",
        "aol.com", "gmx.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de",
        "proton.me", "protonmail.com", "pm.me", "zoho.com", "yandex.com", "yandex.ru",
        "mail.ru", "mail.com", "fastmail.com", "hey.com", "tutanota.com", "qq.com",
        "163.com", "126.com", "t-online.de", "freenet.de", "orange.fr", "free.fr",
        "laposte.net", "libero.it", "virgilio.it", "comcast.net", "verizon.net",
        "att.net", "sbcglobal.net",
    }
)  # fmt: skip
# Providers whose every public suffix is a free mailbox (gmx.at, yahoo.es, …).
_FREE_MAIL_NAMES: frozenset[str] = frozenset(
    {"gmail", "googlemail", "hotmail", "outlook", "live", "yahoo", "gmx", "aol", "yandex"}
)
# Providers that ignore dots in the local part.
_DOTLESS_DOMAINS: frozenset[str] = frozenset({"gmail.com", "googlemail.com"})


_DISPLAY_NAME = re.compile(r"^[^<>]*<([^<>]+@[^<>]+)>$")


def normalize_email(value: Any, *, field: str | None = None) -> str | None:
    """Strip and lowercase an address, validating its syntax; empty → None.

    Plus-tags are kept (``Jane+news@x.com`` → ``jane+news@x.com``); use
    ``email_match_key`` to compare addresses. Deliverability is not checked (no DNS).
    Read leniently, as mail servers do: RFC 5322 quoted local parts
    (``"quote\\"probe"@x.com``) and internationalised addresses (SMTPUTF8) pass; a
    trailing dot after the domain (its DNS root) is dropped; a local part whose dots
    only a quoted form allows (``jane.@docomo.ne.jp``) is kept in that quoted form.
    """
    text = normalize_string(value, field=field)
    if text is None:
        return None
    text = text.lower()
    if text.startswith("mailto:"):
        text = text[len("mailto:") :]
    named = _DISPLAY_NAME.match(text)  # "Jane Doe <jane@acme.com>" → the address
    if named:
        text = named.group(1).strip()
    email, problem = _checked_email(text)
    if email is None:
        raise RecordError(
            f"{field or 'email'}: {text!r} is not a valid email address ({problem})",
            category=ErrorCategory.VALIDATION,
            field=field,
        )
    return email


# Validation (IDNA, Unicode checks) costs far more than a lookup, and the same
# addresses come back often (owners; a record read again after our own write).
@lru_cache(maxsize=1 << 16)
def _checked_email(text: str) -> tuple[str | None, str]:
    """(normalized address, "") or (None, why it is not valid)."""
    local, sep, domain = text.rpartition("@")
    if sep and domain.endswith(".") and not domain.endswith(".."):
        text = f"{local}@{domain[:-1]}"  # "jane@acme.com." : the DNS root, not a typo
    try:
        checked = _validate_email(text)
    except EmailNotValidError as exc:
        problem = str(exc)
        # "jane.@x.jp", "a..b@x.com": dots a dot-atom refuses but a quoted local part
        # allows, and mail providers (Japanese carriers) hand out
        if not (sep and "period" in problem and local and '"' not in local and " " not in local):
            return None, problem
        try:
            checked = _validate_email(f'"{local}"@{text.rpartition("@")[2]}')
        except EmailNotValidError:
            return None, problem
    return str(checked.normalized).lower(), ""


def _validate_email(text: str) -> Any:
    return validate_email(
        text,
        check_deliverability=False,
        allow_quoted_local=True,
        allow_smtputf8=True,
        allow_display_name=False,
        allow_domain_literal=False,
    )


def _split_email(email: str) -> tuple[str, str]:
    local, sep, domain = email.strip().lower().rpartition("@")
    if not sep or not local or not domain:
        raise ValueError(f"not an email address: {email!r}")
    return local, domain


def email_match_key(email: str) -> str:
    """The key two addresses of one mailbox share: plus-tag dropped, Gmail dots dropped.

    For matching only; the stored value keeps its plus-tag.
    """
    local, domain = _split_email(email)
    local = local.split("+", 1)[0]
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "")
        domain = "gmail.com"
    return f"{local}@{domain}"


def is_role_address(email: str) -> bool:
    """True for function mailboxes (info@, noreply@, sales@, test@ …)."""
    local, _ = _split_email(email)
    return local.split("+", 1)[0] in ROLE_LOCAL_PARTS


def domain_from_email(email: str) -> str | None:
    """The registrable domain of an address (``jo@eu.acme.co.uk`` → ``acme.co.uk``)."""
    _, domain = _split_email(email)
    return domain_from_url(domain)


def is_free_mail_domain(domain: str) -> bool:
    """True when ``domain`` (or its registrable part) belongs to a free mailbox provider."""
    host = domain.strip().lower().rstrip(".")
    if host in FREE_MAIL_DOMAINS:
        return True
    parts = _EXTRACT(host)
    registrable = parts.top_domain_under_public_suffix
    return registrable in FREE_MAIL_DOMAINS or parts.domain in _FREE_MAIL_NAMES


# --------------------------------------------------------------------------- domains


def offline_extractor() -> tldextract.TLDExtract:
    """A tldextract instance that can never touch the network or the disk cache.

    No suffix-list URLs and no cache directory: it uses the public-suffix snapshot
    shipped inside the package.
    """
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


_EXTRACT = offline_extractor()

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_HOST_OK = re.compile(r"^[a-z0-9.-]+$")


def domain_from_url(value: Any, *, field: str | None = None) -> str | None:
    """Website or domain → registrable domain: ``https://www.eu.acme.co.uk/x`` → ``acme.co.uk``.

    Scheme, credentials, port, path, ``www.`` and other subdomains are dropped;
    internationalised names are returned in their IDNA (``xn--``) form. A host with no
    public suffix (``localhost``, ``intranet``) or an IP address → ``RecordError``.
    """
    text = normalize_string(value, field=field)
    if text is None:
        return None
    host = _SCHEME.sub("", text.strip().lower())
    host = re.split(r"[/?#\s]", host, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise _bad(field, "a domain", value) from None
    if not host or not _HOST_OK.match(host):
        raise _bad(field, "a domain", value)
    parts = _EXTRACT(host)
    registrable = parts.top_domain_under_public_suffix
    if not registrable or not parts.domain:
        raise _bad(field, "a domain", value)
    return str(registrable)


# --------------------------------------------------------------------------- phone


def normalize_phone(
    value: Any, *, region: str | None = None, field: str | None = None
) -> str | None:
    """Phone → E.164 (``+14155550100``); ``region`` (ISO alpha-2, default US) reads
    national numbers. Empty → None; junk → ``RecordError``.

    Read leniently: a number ``phonenumbers`` finds *possible* (its length fits the
    country's plan) but not *valid* (an unassigned area code such as 823, a range newer
    than the library's metadata) is kept in E.164 all the same. Only text that is not
    a phone number, or whose length cannot be one, is unreadable. The extension is not
    part of E.164: ``phone_extension`` reads it.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = normalize_string(value, field=field)
    if text is None:
        return None
    e164, _ext = _parse_phone(text, (region or DEFAULT_PHONE_REGION).upper())
    if e164 is None:
        raise _bad(field, "a phone number", value)
    return e164


def phone_extension(value: Any, *, region: str | None = None) -> str | None:
    """The extension of a phone number (``"555.123.4567 x204"`` → ``"204"``), if any."""
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    if not isinstance(value, str) or not value.strip():
        return None
    return _parse_phone(value.strip(), (region or DEFAULT_PHONE_REGION).upper())[1]


# Parsing with phonenumbers is slow; a number read back after our own write (or
# shared by records) is parsed once.
@lru_cache(maxsize=1 << 16)
def _parse_phone(text: str, region: str) -> tuple[str | None, str | None]:
    """(E.164 or None when it cannot be a phone number, extension or None)."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None, None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE and not phonenumbers.is_valid_number(number):
        return None, None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, (number.extension or None)


# --------------------------------------------------------------------------- country

# Aliases that ISO 3166 does not spell: abbreviations, old and informal names.
# Every ISO alpha-2 and alpha-3 code is accepted as itself; the ISO names (short,
# official, common) in English and the main European languages come from pycountry.
COUNTRY_ALIASES: dict[str, str] = {
    "usa": "US", "us": "US", "u s": "US", "u s a": "US", "america": "US",
    "united states of america": "US", "the united states": "US", "united states": "US",
    "uk": "GB", "u k": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "united kingdom": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    "deutschland": "DE", "germany": "DE", "brd": "DE", "federal republic of germany": "DE",
    "holland": "NL", "the netherlands": "NL", "netherlands": "NL", "nederland": "NL",
    "south korea": "KR", "korea": "KR", "republic of korea": "KR", "korea republic of": "KR",
    "north korea": "KP",
    "russia": "RU", "russian federation": "RU",
    "uae": "AE", "u a e": "AE", "emirates": "AE", "united arab emirates": "AE",
    "czechia": "CZ", "czech republic": "CZ",
    "viet nam": "VN", "vietnam": "VN",
    "taiwan": "TW", "republic of china": "TW",
    "china": "CN", "prc": "CN", "people's republic of china": "CN", "peoples republic of china": "CN",
    "hong kong": "HK", "hong kong sar": "HK", "macau": "MO", "macao": "MO",
    "ivory coast": "CI", "cote d'ivoire": "CI", "cote divoire": "CI",
    "turkey": "TR", "turkiye": "TR",
    "swiss": "CH", "switzerland": "CH", "schweiz": "CH", "suisse": "CH", "svizzera": "CH",
    "austria": "AT", "osterreich": "AT", "oesterreich": "AT",
    "espana": "ES", "spain": "ES", "italia": "IT", "italy": "IT", "france": "FR",
    "brasil": "BR", "brazil": "BR", "mexico": "MX", "canada": "CA", "japan": "JP",
    "nippon": "JP", "india": "IN", "bharat": "IN", "australia": "AU", "new zealand": "NZ",
    "ireland": "IE", "eire": "IE", "republic of ireland": "IE",
    "sverige": "SE", "sweden": "SE", "norge": "NO", "norway": "NO", "danmark": "DK",
    "denmark": "DK", "suomi": "FI", "finland": "FI", "polska": "PL", "poland": "PL",
    "belgique": "BE", "belgie": "BE", "belgium": "BE", "luxembourg": "LU",
    "portugal": "PT", "greece": "GR", "hellas": "GR", "israel": "IL", "singapore": "SG",
    "south africa": "ZA", "rsa": "ZA", "argentina": "AR", "chile": "CL", "colombia": "CO",
    "peru": "PE", "iran": "IR", "syria": "SY", "laos": "LA", "bolivia": "BO",
    "venezuela": "VE", "tanzania": "TZ", "moldova": "MD", "macedonia": "MK",
    "north macedonia": "MK", "burma": "MM", "myanmar": "MM", "palestine": "PS",
    "vatican": "VA", "holy see": "VA", "cape verde": "CV", "cabo verde": "CV",
    "eswatini": "SZ", "swaziland": "SZ", "east timor": "TL", "timor-leste": "TL",
    "saudi arabia": "SA", "ksa": "SA", "egypt": "EG", "nigeria": "NG", "kenya": "KE",
    "philippines": "PH", "indonesia": "ID", "malaysia": "MY", "thailand": "TH",
    "pakistan": "PK", "bangladesh": "BD", "ukraine": "UA", "romania": "RO",
    "hungary": "HU", "slovakia": "SK", "slovenia": "SI", "croatia": "HR", "serbia": "RS",
    "bulgaria": "BG", "estonia": "EE", "latvia": "LV", "lithuania": "LT", "iceland": "IS",
    "morocco": "MA", "qatar": "QA", "kuwait": "KW", "costa rica": "CR", "uruguay": "UY",
    "puerto rico": "PR", "brunei": "BN", "falkland islands": "FK", "cocos islands": "CC",
    "saint martin": "MF", "saint helena": "SH", "dr congo": "CD", "drc": "CD",
    "democratic republic of congo": "CD", "vatican city": "VA",
}  # fmt: skip
# English display names where the ISO short name is inverted or long-winded
# ("Korea, Republic of" has a common name; these do not).
_COUNTRY_DISPLAY: dict[str, str] = {
    "RU": "Russia", "BN": "Brunei", "CD": "Democratic Republic of the Congo", "FM": "Micronesia",
    "PS": "Palestine", "VG": "British Virgin Islands", "VI": "U.S. Virgin Islands",
    "VA": "Vatican City", "SH": "Saint Helena", "FK": "Falkland Islands", "CC": "Cocos Islands",
    "MF": "Saint Martin", "SX": "Sint Maarten",
}  # fmt: skip
# Languages whose country names are indexed (pycountry's gettext catalogues).
_COUNTRY_LANGS = ("de", "fr", "es", "it", "nl", "pt", "sv", "fi", "pl")


def _fold(text: str) -> str:
    """Casefold, strip accents, turn dots/commas/underscores into spaces, collapse spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    plain = re.sub(r"[.,_()]", " ", plain).replace("\u2019", "'")
    return " ".join(plain.split())


def _iso_names(country: Any) -> list[str]:
    """A pycountry country's English names, inverted ones also in reading order."""
    names = [getattr(country, attr, None) for attr in ("common_name", "name", "official_name")]
    names.append(_COUNTRY_DISPLAY.get(country.alpha_2))
    out = [n for n in names if n]
    # "Korea, Republic of" is also written "Republic of Korea"
    out += [f"{tail} {head}" for head, _, tail in (n.partition(", ") for n in out) if tail]
    return out


@cache
def _country_names() -> tuple[dict[str, str], dict[str, str]]:
    """(folded name → alpha-2, alpha-2 → English display name) from pycountry's ISO 3166 data."""
    import gettext

    import pycountry

    catalogues = [gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
                  for lang in _COUNTRY_LANGS]
    index: dict[str, str] = {}
    english: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        names = _iso_names(country)
        english[code] = _COUNTRY_DISPLAY.get(code) or getattr(country, "common_name", None) or country.name
        for name in names:
            index.setdefault(_fold(name), code)
        for name in names:
            for cat in catalogues:
                index.setdefault(_fold(cat.gettext(name)), code)
        index.setdefault(country.alpha_3.casefold(), code)
    _add_locale_names(index, english)
    return index, english


def _add_locale_names(index: dict[str, str], codes: Mapping[str, str]) -> None:
    """Spellings ISO does not use but phonenumbers' locale data does ("Holanda", "Hong-Kong")."""
    from phonenumbers.geodata.locale import LOCALE_DATA

    for code, names in LOCALE_DATA.items():
        if code not in codes:
            continue
        for lang in ("en", *_COUNTRY_LANGS):
            name = names.get(lang)
            for _ in range(5):  # '*xx' points to another language's entry
                if name is None or not name.startswith("*"):
                    break
                name = names.get(name[1:])
            if name:
                index.setdefault(_fold(name), code)


def normalize_country(value: Any, *, field: str | None = None) -> str | None:
    """Country name, alias or code → ISO-3166 alpha-2 (``"U.S."`` → ``"US"``,
    ``"Deutschland"`` → ``"DE"``). Empty → None; unknown → ``RecordError``."""
    text = normalize_string(value, field=field)
    if text is None:
        return None
    code = _country_code(text)
    if code is None:
        raise _bad(field, "a country", value)
    return code


@lru_cache(maxsize=4096)
def _country_code(text: str) -> str | None:
    folded = _fold(text)
    index, english = _country_names()
    if len(folded) == 2 and folded.upper() in english:
        return folded.upper()
    return (
        COUNTRY_ALIASES.get(folded)
        or COUNTRY_ALIASES.get(folded.replace(" ", ""))
        or index.get(folded)
        or index.get(folded.removeprefix("the "))
    )


def country_name(code: str) -> str:
    """English name of an ISO alpha-2 code (``"DE"`` → ``"Germany"``); KeyError if unknown."""
    return _country_names()[1][code.upper()]


# --------------------------------------------------------------------------- company names

# Legal-form words dropped from the end of a company name for matching.
LEGAL_SUFFIXES: frozenset[str] = frozenset(
    {
        "inc", "incorporated", "llc", "llp", "lp", "ltd", "limited", "gmbh", "mbh", "ag",
        "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "corp", "corporation", "co",
        "company", "plc", "pty", "pte", "oy", "oyj", "ab", "as", "asa", "aps", "kg",
        "kgaa", "se", "ug", "kk", "sl", "sau", "lda", "ltda", "sro", "sp z oo", "zoo",
        "holdings", "group", "gesmbh", "ohg", "ev", "eg", "sprl", "bvba", "cv", "kft",
        "bhd", "sdn", "pvt",
        # spelled out in one word
        "aktiengesellschaft", "kommanditgesellschaft", "aktiebolag", "aktieselskab",
        "anpartsselskab", "osakeyhtio", "proprietary",
    }
)  # fmt: skip
# Legal forms of several words, abbreviated ("S A", "Sp. z o.o.") or spelled out
# ("Gesellschaft mit beschränkter Haftung", "Société Anonyme"); "Pty Ltd", "GmbH & Co.
# KG" are handled by stripping one suffix word at a time.
_DOTTED = re.compile(r"\b(?:\w\.){2,}")
_NOT_WORD = re.compile(r"[^\w\s]|_")
_MULTI_SUFFIXES: tuple[tuple[str, ...], ...] = (
    # legal forms spelled out (accents already dropped)
    ("gesellschaft", "mit", "beschrankter", "haftung"),
    ("gesellschaft", "mit", "beschraenkter", "haftung"),
    ("gesellschaft", "burgerlichen", "rechts"),
    ("offene", "handelsgesellschaft"),
    ("eingetragener", "verein"),
    ("eingetragene", "genossenschaft"),
    ("kommanditgesellschaft", "auf", "aktien"),
    ("societe", "anonyme"),
    ("societe", "par", "actions", "simplifiee"),
    ("societe", "a", "responsabilite", "limitee"),
    ("societe", "en", "nom", "collectif"),
    ("besloten", "vennootschap"),
    ("naamloze", "vennootschap"),
    ("commanditaire", "vennootschap"),
    ("sociedad", "anonima"),
    ("sociedad", "limitada"),
    ("sociedad", "de", "responsabilidad", "limitada"),
    ("sociedade", "anonima"),
    ("sociedade", "limitada"),
    ("societa", "per", "azioni"),
    ("societa", "a", "responsabilita", "limitata"),
    ("limited", "liability", "company"),
    ("limited", "liability", "partnership"),
    ("limited", "partnership"),
    ("public", "limited", "company"),
    ("private", "limited"),
    ("spolka", "z", "ograniczona", "odpowiedzialnoscia"),
    ("spolka", "akcyjna"),
    ("ges", "mbh"),
    ("sa", "de", "cv"),
    ("s", "a"),
    ("b", "v"),
    ("n", "v"),
    ("s", "r", "l"),
    ("sp", "z", "o", "o"),
    ("co", "kg"),
    ("gmbh", "co", "kg"),
)
# Last words of the multi-word forms: a name ending otherwise skips the scan.
_MULTI_LAST: frozenset[str] = frozenset(multi[-1] for multi in _MULTI_SUFFIXES)


def company_match_key(name: str) -> str:
    """A company name folded for matching: ``"ACME, Inc."`` and ``"Acme"`` → ``"acme"``.

    Casefolds, strips accents and punctuation, turns ``&`` into ``and``, drops legal
    suffixes (Inc, LLC, GmbH, Pty Ltd …) from the end and collapses spaces. A name made
    only of a legal form keeps it (``"Co"`` stays ``"co"``).
    """
    if name.isascii():  # nothing to decompose (most names: a million-record run)
        text = name.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", name)
        text = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    text = text.replace("&", " and ").replace("+", " and ")
    # "S.A." → "sa", "C.V." → "cv": dotted abbreviations become one word first.
    if "." in text:
        text = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _NOT_WORD.sub(" ", text)
    words = text.split()
    if words and words[0] == "the" and len(words) > 1:
        words = words[1:]
    changed = True
    while changed and len(words) > 1:
        changed = False
        for multi in _MULTI_SUFFIXES if words[-1] in _MULTI_LAST else ():
            n = len(multi)
            if len(words) > n and tuple(words[-n:]) == multi:
                words = words[:-n]
                changed = True
        if len(words) > 1 and words[-1] in LEGAL_SUFFIXES:
            words = words[:-1]
            changed = True
        if len(words) > 1 and words[-1] == "and":  # "Smith & Co" → "smith"
            words = words[:-1]
            changed = True
    return " ".join(words)


# --------------------------------------------------------------------------- dates

_EPOCH_MS = re.compile(r"^-?\d{11,14}$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "+0000" (Salesforce) → "+00:00" for fromisoformat on every Python version.
_TZ_NO_COLON = re.compile(r"([+-]\d{2})(\d{2})$")


def normalize_datetime(value: Any, *, field: str | None = None) -> datetime | None:
    """An instant → aware UTC datetime.

    Accepts ``datetime`` (naive is taken as UTC), ISO-8601 strings with ``Z``, an
    offset or Salesforce's ``+0000``, epoch milliseconds (HubSpot) as int or string,
    and a bare ``YYYY-MM-DD`` (midnight UTC).
    """
    if blank(value):
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if not isinstance(value, str):
        raise _bad(field, "a date-time", value)
    text = value.strip()
    if _EPOCH_MS.match(text):
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    iso = text.replace("z", "Z")
    iso = iso[:-1] + "+00:00" if iso.endswith("Z") else _TZ_NO_COLON.sub(r"\1:\2", iso)
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        raise _bad(field, "a date-time", value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def normalize_date(value: Any, *, field: str | None = None) -> date | None:
    """A calendar date: ``YYYY-MM-DD`` as is; a date-time → its UTC date."""
    if blank(value):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_ONLY.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _bad(field, "a date", value) from None
    instant = normalize_datetime(value, field=field)
    return instant.date() if instant else None


# --------------------------------------------------------------------------- numbers, booleans

#: numbers of this many integer digits or more are unreadable: no CRM holds them (money
#: fields take 16 digits before the point, Salesforce 18 in all) and the store's
#: NUMERIC(18, 2) columns would refuse them
MAX_DIGITS = 16
_MONEY_JUNK = re.compile(r"[\s,$€£¥]")


def plain_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without going to exponent form (``20.0`` → ``20``, ``1.50`` → ``1.5``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def normalize_decimal(value: Any, *, field: str | None = None) -> Decimal | None:
    """Money or any number → ``Decimal``: strings (``"1,234.50"``), ints, floats via ``str``."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise _bad(field, "a number", value)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(_MONEY_JUNK.sub("", value))
        except InvalidOperation:
            raise _bad(field, "a number", value) from None
    else:
        raise _bad(field, "a number", value)
    if not result.is_finite() or result.adjusted() >= MAX_DIGITS:
        raise _bad(field, f"a number below 10^{MAX_DIGITS}", value)
    return plain_decimal(result)


def normalize_int(value: Any, *, field: str | None = None) -> int | None:
    """A whole number (``"1,200"``, ``1200.0``); a fractional value → ``RecordError``."""
    number = normalize_decimal(value, field=field)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise _bad(field, "a whole number", value)
    return int(number)


_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})


def normalize_bool(value: Any, *, field: str | None = None) -> bool | None:
    """``"true"``/``"false"``/``True``/``1``/``"yes"`` → bool; empty → None."""
    if blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        folded = value.strip().casefold()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    raise _bad(field, "true or false", value)
