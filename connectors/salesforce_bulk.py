"""Pure helpers for Salesforce Bulk API 2.0: CSV values in and out, result rows.

Bulk API 2.0 speaks CSV: every value is text, an empty cell means "no value" on
reads and "leave unchanged" on writes, and ``#N/A`` sets a field to null.
Result rows come back in any order, so they are matched to ops by key.
https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# Bulk API 2.0 CSV literal that sets a field to null.
BULK_NULL = "#N/A"

BOOLEAN_TYPES = frozenset({"boolean"})
INT_TYPES = frozenset({"int"})
FLOAT_TYPES = frozenset({"double", "currency", "percent"})


def to_csv_value(value: Any) -> str:
    """One value as Bulk API 2.0 CSV text."""
    if value is None:
        return BULK_NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def from_csv_value(text: str, sf_type: str | None) -> Any:
    """One CSV cell back to the JSON value the REST API would have returned."""
    if text == "":
        return None
    if sf_type in BOOLEAN_TYPES:
        return text.lower() == "true"
    try:
        if sf_type in INT_TYPES:
            return int(float(text))
        if sf_type in FLOAT_TYPES:
            return float(text)
    except ValueError:
        return text
    return text


def read_csv(text: str) -> Iterator[dict[str, str]]:
    """Rows of a CSV document (header first) as dicts."""
    if not text:
        return iter(())
    return csv.DictReader(io.StringIO(text))


def typed_rows(text: str, types: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Query-result CSV rows with values typed by the describe ``types`` (name → type)."""
    for row in read_csv(text):
        yield {k: from_csv_value(v, types.get(k)) for k, v in row.items()}


@dataclass(frozen=True, slots=True)
class BulkRow:
    """One ingest result row: the op's key, and either the record id or the error."""

    key: str
    success: bool
    record_id: str | None = None
    created: bool = False
    status_code: str | None = None
    message: str | None = None


def parse_results(text: str, *, key_column: str, success: bool) -> Iterator[BulkRow]:
    """Rows of ``successfulResults`` (``sf__Id,sf__Created,<cols>``) or ``failedResults``
    (``sf__Id,sf__Error,<cols>``), keyed by ``key_column`` of the data we sent.

    ``sf__Error`` reads ``STATUS_CODE:message:fields``.
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_successful_results.htm
    https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/get_job_failed_results.htm
    """
    for row in read_csv(text):
        key = row.get(key_column) or ""
        if key_column == "Id" and not key:
            key = row.get("sf__Id") or ""
        if success:
            yield BulkRow(
                key=key,
                success=True,
                record_id=row.get("sf__Id") or None,
                created=(row.get("sf__Created") or "").lower() == "true",
            )
        else:
            error = row.get("sf__Error") or ""
            code, _, message = error.partition(":")
            yield BulkRow(
                key=key,
                success=False,
                record_id=row.get("sf__Id") or None,
                status_code=code or "UNKNOWN",
                message=message or error,
            )
