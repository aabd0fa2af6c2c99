"""Named transforms: how one native value becomes a canonical value and back.

A field map names a transform per field (``"phone"``, ``"stage"``, ``"decimal"`` …).
``read`` turns the native value into the canonical one (``None`` for empty) and
raises ``RecordError`` naming the native field when it cannot (``fieldmap.read_entity``
makes that one unreadable field, not a lost record); ``write`` turns a
canonical value into a *typed* native value (``str``, ``int``, ``Decimal``, ``date``,
``datetime``, ``bool``, ``list``). The system's serializer in ``mapping.fieldmap``
then puts typed values into the shape the API wants (HubSpot strings, Salesforce
``YYYY-MM-DD`` dates, JSON numbers).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from connectors.base import ErrorCategory, RecordError
from mapping import definitions, values
from mapping import normalize as n

__all__ = [
    "PICKLIST_TABLES",
    "TRANSFORMS",
    "Context",
    "Transform",
    "get_transform",
    "mapping_error",
    "transform_names",
]


@dataclass(frozen=True)
class Context:
    """What a transform may know besides the value: where it comes from or goes to."""

    system: str
    native_type: str
    field: str
    region: str | None = None  # ISO alpha-2 of the record's country, for national phone numbers
    # Extra picklist readings for this field (casefolded native value → canonical value),
    # from the user's ``values`` overrides.
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)


Reader = Callable[[Any, Context], Any]
Writer = Callable[[Any, Context], Any]


@dataclass(frozen=True)
class Transform:
    """A named pair of functions: native → canonical (``read``) and back (``write``)."""

    name: str
    read: Reader
    write: Writer
    # The canonical type ``read`` produces: text, int, decimal, bool, date, datetime,
    # json (any JSON value: extras only) or none (write-only transforms).
    kind: str = "text"


def mapping_error(ctx: Context, message: str) -> RecordError:
    """A ``RecordError`` of category MAPPING naming the native field."""
    return RecordError(
        f"{ctx.system} {ctx.native_type}.{ctx.field}: {message}",
        category=ErrorCategory.MAPPING,
        field=ctx.field,
    )


def _same(value: Any, ctx: Context) -> Any:
    return value


# --------------------------------------------------------------------------- scalar transforms


def _read_string(value: Any, ctx: Context) -> str | None:
    return n.normalize_string(value, field=ctx.field)


def _read_email(value: Any, ctx: Context) -> str | None:
    return n.normalize_email(value, field=ctx.field)


# Salesforce sandboxes append ".invalid" to every user's email so a copy of production
# never mails real people; the owner is still that user.
# https://help.salesforce.com/s/articleView?id=sf.data_sandbox_create.htm
SANDBOX_EMAIL_SUFFIX = ".invalid"


def _read_owner_email(value: Any, ctx: Context) -> str | None:
    text = n.normalize_string(value, field=ctx.field)
    if text is not None and text.lower().endswith(SANDBOX_EMAIL_SUFFIX):
        text = text[: -len(SANDBOX_EMAIL_SUFFIX)]
    return n.normalize_email(text, field=ctx.field)


def _read_url(value: Any, ctx: Context) -> str | None:
    """A website, kept as written (stripped), when its host is a registrable domain.

    ``"n/a"``, ``"see LinkedIn"``, ``http://localhost`` → ``RecordError``: a website
    that names no domain is unreadable (and never written to another system).
    """
    text = n.normalize_string(value, field=ctx.field)
    if text is None:
        return None
    n.domain_from_url(text, field=ctx.field)
    return text


def _read_domain(value: Any, ctx: Context) -> str | None:
    return n.domain_from_url(value, field=ctx.field)


def _domain_list(value: Any, ctx: Context) -> list[Any]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise mapping_error(ctx, f"cannot read {value!r} as a list of domains") from None
        else:
            value = re.split(r"[,;\s]+", text)
    if not isinstance(value, list | tuple):
        raise mapping_error(ctx, f"cannot read {value!r} as a list of domains")
    return list(value)


def _read_domains(value: Any, ctx: Context) -> str | None:
    """Planhat ``domains`` (array) → the first registrable domain."""
    if n.blank(value):
        return None
    for item in _domain_list(value, ctx):
        if not n.blank(item):
            return n.domain_from_url(item, field=ctx.field)
    return None


def _write_domains(value: Any, ctx: Context) -> list[str]:
    return [value]


def _read_phone(value: Any, ctx: Context) -> str | None:
    return n.normalize_phone(value, region=ctx.region, field=ctx.field)


def _defined_country(ctx: Context) -> Any:
    """The admin's ``[definitions.country]`` spellings in force (None: none)."""
    return definitions.active().get("country")


def _read_country(value: Any, ctx: Context) -> str | None:
    spelled = _defined_country(ctx)
    if spelled is not None and isinstance(value, str) and value.strip():
        code = spelled.to_canonical(ctx.system, value)
        if code is not None:
            return str(code)
    return n.normalize_country(value, field=ctx.field)


def _write_country(value: Any, ctx: Context) -> str:
    spelled = _defined_country(ctx)
    native = spelled.to_native(ctx.system, value) if spelled is not None else None
    if native is not None:
        return str(native)
    try:
        return n.country_name(value)
    except KeyError:
        raise mapping_error(ctx, f"unknown country code {value!r}") from None


def _write_country_code(value: Any, ctx: Context) -> Any:
    spelled = _defined_country(ctx)
    native = spelled.to_native(ctx.system, value) if spelled is not None else None
    return value if native is None else native


def _read_int(value: Any, ctx: Context) -> int | None:
    return n.normalize_int(value, field=ctx.field)


def _read_decimal(value: Any, ctx: Context) -> Decimal | None:
    return n.normalize_decimal(value, field=ctx.field)


_HUNDRED = Decimal(100)


def _read_fraction_percent(value: Any, ctx: Context) -> Decimal | None:
    """A 0..1 fraction (HubSpot probability) → canonical percent 0..100."""
    number = n.normalize_decimal(value, field=ctx.field)
    return None if number is None else n.plain_decimal(number * _HUNDRED)


def _write_fraction_percent(value: Any, ctx: Context) -> Decimal:
    return n.plain_decimal(Decimal(value) / _HUNDRED)


def _read_bool(value: Any, ctx: Context) -> bool | None:
    return n.normalize_bool(value, field=ctx.field)


def _read_flag(value: Any, ctx: Context) -> bool:
    """A yes/no flag whose absence means no (e.g. an email opt-out nobody set).

    Salesforce checkboxes are never null, HubSpot's are null until set: reading null
    as False keeps the systems from disagreeing about a value nobody gave.
    """
    return bool(n.normalize_bool(value, field=ctx.field))


def _read_date(value: Any, ctx: Context) -> date | None:
    return n.normalize_date(value, field=ctx.field)


def _read_datetime(value: Any, ctx: Context) -> datetime | None:
    return n.normalize_datetime(value, field=ctx.field)


def _write_date_as_datetime(value: Any, ctx: Context) -> datetime:
    """A canonical date written to a date-time field (HubSpot ``closedate``): midnight UTC."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(), tzinfo=UTC)


_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _read_currency(value: Any, ctx: Context) -> str | None:
    text = n.normalize_string(value, field=ctx.field)
    if text is None:
        return None
    code = text.upper()
    if not _CURRENCY.match(code):
        raise mapping_error(ctx, f"{value!r} is not an ISO 4217 currency code")
    return code


def _read_json(value: Any, ctx: Context) -> Any:
    """Custom fields into ``extras``: JSON values as they are, strings stripped, empty → None."""
    if n.blank(value):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool | int | float | list | dict):
        return value
    raise mapping_error(ctx, f"cannot store {value!r} as JSON")


# --------------------------------------------------------------------------- picklists
# Value sets (``stage``, ``industry``…): each system's values come from the shared
# definitions in force (``mapping.definitions``: the connectors' declarations with the
# admin's ``[definitions]`` applied); no system's values are written here.


def _picklist(table_name: str) -> Transform:
    def read(value: Any, ctx: Context) -> str | None:
        text = n.normalize_string(value, field=ctx.field)
        if text is None:
            return None
        folded = text.casefold()
        vs = definitions.active()[table_name]
        canonical = ctx.aliases.get(folded) or vs.to_canonical(ctx.system, text)
        if canonical is None:
            retired = vs.retired_reads.get(ctx.system, {}).get(folded)
            why = f" (its canonical value {retired!r} is retired)" if retired else ""
            raise mapping_error(ctx, f"unknown {table_name} value {text!r}{why}")
        return canonical

    def write(value: Any, ctx: Context) -> str:
        vs = definitions.active()[table_name]
        native = vs.to_native(ctx.system, value)
        if native is None:
            if value not in vs.values:
                raise mapping_error(ctx, vs.why_unknown(value))
            raise mapping_error(ctx, f"canonical {table_name} {value!r} has no {ctx.system} value")
        return native

    return Transform(table_name, read, write)


def _read_ignored(value: Any, ctx: Context) -> None:
    return None


def _write_pipeline(value: Any, ctx: Context) -> str:
    """The pipeline a stage is written with (sent with the stage): the system's default
    (``pipelines`` declared by the connector, ``[definitions.stage] pipeline``), or the
    one ``[definitions.stage.pipelines.<system>]`` puts that stage in."""
    pipeline = definitions.active()["stage"].pipeline(ctx.system, value)
    if pipeline is None:
        raise mapping_error(ctx, f"{ctx.system} declares no pipeline for deal stages")
    return pipeline


# --------------------------------------------------------------------------- registry

TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform("string", _read_string, _same),
        Transform("email", _read_email, _same),
        Transform("owner_email", _read_owner_email, _same),
        Transform("url", _read_url, _same),
        Transform("domain", _read_domain, _same),
        Transform("domains", _read_domains, _write_domains),
        Transform("phone", _read_phone, _same),
        Transform("country", _read_country, _write_country),
        # an API that stores ISO 3166-1 alpha-2 codes: read like "country", written as the code
        Transform("country_code", _read_country, _write_country_code),
        Transform("int", _read_int, _same, "int"),
        Transform("decimal", _read_decimal, _same, "decimal"),
        Transform("fraction_percent", _read_fraction_percent, _write_fraction_percent, "decimal"),
        Transform("bool", _read_bool, _same, "bool"),
        Transform("flag", _read_flag, _same, "bool"),
        Transform("date", _read_date, _same, "date"),
        Transform("datetime", _read_datetime, _same, "datetime"),
        Transform("date_as_datetime", _read_date, _write_date_as_datetime, "date"),
        Transform("currency", _read_currency, _same),
        Transform("json", _read_json, _same, "json"),
        Transform("pipeline", _read_ignored, _write_pipeline, "none"),
        *(_picklist(name) for name in values.value_sets()),
    )
}


class _PicklistTables(Mapping[str, frozenset[str]]):
    """Picklist transforms → the canonical values they produce now (what a ``values``
    override may map a native value to): the definitions in force."""

    def __getitem__(self, name: str) -> frozenset[str]:
        vs = definitions.active().get(name) if name in values.value_sets() else None
        if vs is None:
            raise KeyError(name)
        return frozenset(vs.values)

    def __iter__(self) -> Iterator[str]:
        return iter(values.value_sets())

    def __len__(self) -> int:
        return len(values.value_sets())


PICKLIST_TABLES: Mapping[str, frozenset[str]] = _PicklistTables()


def get_transform(name: str) -> Transform:
    """The transform called ``name``; ``LookupError`` naming the known ones otherwise."""
    try:
        return TRANSFORMS[name]
    except KeyError:
        known = ", ".join(sorted(TRANSFORMS))
        raise LookupError(f"unknown transform {name!r} (known: {known})") from None


def transform_names() -> tuple[str, ...]:
    """Every registered transform name, sorted."""
    return tuple(sorted(TRANSFORMS))
