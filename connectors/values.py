"""How canonical values travel to a vendor's API (a connector declares one).

The mapping layer turns canonical values (``Decimal``, ``date``, ``datetime``, lists)
into what the API takes with the connector's ``NativeValues``: JSON numbers and ISO
text by default; HubSpot takes every property value as a string; Salesforce writes
date-times as ``2024-05-01T10:00:00.000+0000``; Planhat nests dotted names
(``custom.Score``) into objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def plain_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without going to exponent form (``20.0`` → ``20``, ``1.50`` → ``1.5``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def epoch_ms(instant: datetime) -> str:
    """Milliseconds since the epoch (UTC), as text."""
    aware = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant
    return str(int(aware.timestamp() * 1000))


def _number(value: Decimal) -> int | float:
    plain = plain_decimal(value)
    return int(plain) if plain == plain.to_integral_value() else float(plain)


@dataclass(frozen=True)
class NativeValues:
    """JSON values: numbers as numbers, dates ``YYYY-MM-DD``, date-times ISO-8601 UTC
    with ``Z`` (or ``datetime_format`` when set); ``nested``: dotted names are paths."""

    datetime_format: str | None = None  # strftime pattern; "%f3" → milliseconds
    nested: bool = False

    def datetime_text(self, value: datetime) -> str:
        instant = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if self.datetime_format is None:
            return instant.isoformat().replace("+00:00", "Z")
        return instant.strftime(self.datetime_format.replace("%f3", f"{instant.microsecond // 1000:03d}"))

    def serialize(self, value: Any) -> Any:
        """``value`` as the API takes it."""
        if isinstance(value, Decimal):
            return _number(value)
        if isinstance(value, datetime):
            return self.datetime_text(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, list | tuple):
            return [self.serialize(v) for v in value]
        return value


@dataclass(frozen=True)
class StringValues(NativeValues):
    """Every value a string: booleans ``true``/``false``, date and date-time values as
    epoch milliseconds (dates at midnight UTC), lists joined by ``;``, empty as ``""``
    (HubSpot's property values)."""

    def serialize(self, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, Decimal):
            return format(plain_decimal(value), "f")
        if isinstance(value, datetime):
            return epoch_ms(value)
        if isinstance(value, date):
            return epoch_ms(datetime.combine(value, datetime.min.time(), tzinfo=UTC))
        if isinstance(value, list | tuple):
            return ";".join(self.serialize(v) for v in value)
        return str(value)
