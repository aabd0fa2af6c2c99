"""Salesforce error bodies → revsync error families and error-ledger categories.

REST errors are a JSON array ``[{"message","errorCode","fields"?}]``; per-record
results in sObject Collections carry ``statusCode`` instead of ``errorCode``.
https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import AuthError, ErrorCategory, FatalError

# statusCode (collections / DML results) → error-ledger category.
_CATEGORIES: dict[str, ErrorCategory] = {
    "DUPLICATE_VALUE": ErrorCategory.DUPLICATE,
    "DUPLICATES_DETECTED": ErrorCategory.DUPLICATE,
    "DUPLICATE_EXTERNAL_ID": ErrorCategory.DUPLICATE,
    "STRING_TOO_LONG": ErrorCategory.TOO_LONG,
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": ErrorCategory.VALIDATION,
    "REQUIRED_FIELD_MISSING": ErrorCategory.VALIDATION,
    "FIELD_INTEGRITY_EXCEPTION": ErrorCategory.VALIDATION,
    "MALFORMED_ID": ErrorCategory.VALIDATION,
    "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY": ErrorCategory.VALIDATION,
    "UNABLE_TO_LOCK_ROW": ErrorCategory.LOCKED,
    "ENTITY_IS_DELETED": ErrorCategory.NOT_FOUND,
    "NOT_FOUND": ErrorCategory.NOT_FOUND,
    "INSUFFICIENT_ACCESS_OR_READONLY": ErrorCategory.PERMISSION,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": ErrorCategory.PERMISSION,
    "REQUEST_LIMIT_EXCEEDED": ErrorCategory.RATE_LIMIT,
}


def category_for(status_code: str) -> ErrorCategory:
    """The error-ledger category of a Salesforce ``statusCode``."""
    if status_code in _CATEGORIES:
        return _CATEGORIES[status_code]
    if status_code.startswith("INVALID_"):
        return ErrorCategory.VALIDATION
    return ErrorCategory.UNKNOWN


class SalesforceApiError(FatalError):
    """A refused call that retrying will not fix; carries Salesforce's errorCode."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class SessionExpired(AuthError):
    """401 INVALID_SESSION_ID: refresh the token once and repeat the call."""


def error_code(content: Any) -> tuple[str, str]:
    """(errorCode, message) of a REST error body (a JSON array of errors)."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        first = content[0]
        return str(first.get("errorCode") or first.get("statusCode") or ""), str(
            first.get("message") or ""
        )
    if isinstance(content, Mapping):
        return str(content.get("errorCode") or content.get("error") or ""), str(
            content.get("message") or content.get("error_description") or ""
        )
    return "", str(content)[:200]
