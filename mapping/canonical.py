"""The canonical model: one shape for accounts, contacts and opportunities.

Values are frozen dataclasses. Money is ``Decimal``; instants are timezone-aware UTC
``datetime``; calendar dates (close date, renewal date) are ``date``. ``extras`` holds
mapped custom fields as JSON-compatible values.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar


class ObjectType(StrEnum):
    """Canonical object types."""

    ACCOUNT = "account"
    CONTACT = "contact"
    OPPORTUNITY = "opportunity"


def new_id() -> str:
    """A fresh canonical id (UUID4 as a string)."""
    return str(uuid.uuid4())


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime; naive values are taken to be UTC."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class _Entity:
    """Fields every canonical entity carries."""

    OBJECT: ClassVar[ObjectType]
    # Names of the business fields (everything but identity and bookkeeping).
    BOOKKEEPING: ClassVar[frozenset[str]] = frozenset(
        {"id", "created_at", "updated_at", "deleted_at", "extras"}
    )

    id: str = field(default_factory=new_id)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def business_fields(cls) -> tuple[str, ...]:
        """The fields that policies decide (identity and bookkeeping excluded)."""
        return tuple(
            f.name for f in dataclasses.fields(cls) if f.name not in cls.BOOKKEEPING
        )

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (the original is never mutated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class Account(_Entity):
    """A company."""

    OBJECT: ClassVar[ObjectType] = ObjectType.ACCOUNT

    name: str | None = None
    domain: str | None = None
    website: str | None = None
    industry: str | None = None
    employees: int | None = None
    annual_revenue: Decimal | None = None
    phone: str | None = None
    billing_street: str | None = None
    billing_city: str | None = None
    billing_state: str | None = None
    billing_postal_code: str | None = None
    country: str | None = None
    owner_email: str | None = None
    lifecycle_stage: str | None = None
    customer_status: str | None = None
    health: Decimal | None = None
    arr: Decimal | None = None
    renewal_date: date | None = None
    # the parent company (a canonical account id): Salesforce ParentId, HubSpot's
    # "child to parent company" association; decided like any field, checked for cycles
    parent_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Contact(_Entity):
    """A person at an account (Salesforce Contact or Lead, HubSpot contact, Planhat enduser)."""

    OBJECT: ClassVar[ObjectType] = ObjectType.CONTACT

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    phone: str | None = None
    # where the person works (mailing address city / state): weak match evidence
    city: str | None = None
    state: str | None = None
    account_id: str | None = None
    lifecycle_stage: str | None = None
    owner_email: str | None = None
    lead_source: str | None = None
    do_not_contact: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Opportunity(_Entity):
    """A deal."""

    OBJECT: ClassVar[ObjectType] = ObjectType.OPPORTUNITY

    name: str | None = None
    account_id: str | None = None
    contact_ids: tuple[str, ...] = ()
    amount: Decimal | None = None
    currency: str | None = None
    stage: str | None = None
    close_date: date | None = None
    probability: Decimal | None = None
    type: str | None = None
    owner_email: str | None = None
    is_closed: bool | None = None
    is_won: bool | None = None


Entity = Account | Contact | Opportunity

ENTITY_CLASSES: dict[ObjectType, type[Account] | type[Contact] | type[Opportunity]] = {
    ObjectType.ACCOUNT: Account,
    ObjectType.CONTACT: Contact,
    ObjectType.OPPORTUNITY: Opportunity,
}


@dataclass(frozen=True, kw_only=True)
class ExternalRef:
    """Where a canonical entity lives in one external system."""

    canonical_id: str
    system: str
    object_type: ObjectType
    remote_id: str
    remote_modstamp: datetime | None = None
    last_seen_hash: str | None = None
    last_written_hash: str | None = None


# --------------------------------------------------------------------------- JSON codec


def _base_type(hint: Any) -> Any:
    import typing

    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args and typing.get_origin(hint) is not tuple else hint


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    import typing

    base = _base_type(hint)
    if base is Decimal:
        return Decimal(str(value))
    if base is datetime:
        return utc(datetime.fromisoformat(value)) if isinstance(value, str) else value
    if base is date:
        return date.fromisoformat(value) if isinstance(value, str) else value
    if typing.get_origin(base) is tuple or typing.get_origin(hint) is tuple:
        return tuple(value)
    return value


def encode_value(value: Any) -> Any:
    """A JSON-compatible form of one canonical value (Decimal → str, dates → ISO)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def entity_to_json(entity: Any, fields: Any = None) -> dict[str, Any]:
    """The business fields of ``entity`` (or just ``fields``) as a JSON-compatible dict."""
    names = fields if fields is not None else type(entity).business_fields()
    return {n: encode_value(getattr(entity, n)) for n in names}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    import typing

    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def entity_from_json(object_type: ObjectType | str, data: dict[str, Any], **extra: Any) -> Any:
    """Rebuild an entity of ``object_type`` from ``entity_to_json`` output (unknown keys ignored)."""
    cls = ENTITY_CLASSES[ObjectType(object_type)]
    hints = _hints(cls)
    values = {
        k: _decode(hints[k], v) for k, v in data.items() if k in hints and k not in _Entity.BOOKKEEPING
    }
    return cls(**values, **extra)
