"""A SOQL subset for the Salesforce emulator: tokenizer, parser and compiler.

Supported: ``SELECT f1, f2, Rel.f FROM T [WHERE cond] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`` and ``SELECT COUNT() FROM T [WHERE]``.
Conditions: ``= != <> < <= > >= IN NOT IN LIKE``, ``AND``, ``OR``, ``NOT`` and
parentheses; as in Salesforce, ``AND`` and ``OR`` may not be mixed at one level
without parentheses. Literals: quoted strings with backslash escapes (as
simple-salesforce's ``format_soql`` writes them), numbers, ``true``/``false``/``null``,
dates ``2026-01-01`` and datetimes ``2026-01-01T00:00:00Z`` / ``...+00:00`` /
``...000+0000``.

Text comparisons are case-insensitive, as in Salesforce. Datetimes are held as
Salesforce renders them (``2026-11-02T10:15:30.000+0000``), which sorts as text, so
datetime literals are normalised to that form and compared as strings.

Reference: https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from connectors.schema import FieldSpec

# Datetime text form used by the store and in every response.
SF_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

# Offsets above this are refused, as Salesforce does.
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_offset.htm
MAX_OFFSET = 2000

TEXT_TYPES = frozenset({"string", "email", "phone", "url", "picklist", "textarea"})
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"int", "double", "currency", "percent"})

# Reference field → (relationship name, target object). ``None`` target: same object.
REFERENCES: dict[str, tuple[str, str | None]] = {
    "OwnerId": ("Owner", "User"),
    "AccountId": ("Account", "Account"),
    "ContactId": ("Contact", "Contact"),
    "OpportunityId": ("Opportunity", "Opportunity"),
    "MasterRecordId": ("MasterRecord", None),
    "ParentId": ("Parent", "Account"),  # the account hierarchy
    "ConvertedContactId": ("ConvertedContact", "Contact"),
}


class SoqlError(Exception):
    """A query Salesforce would refuse: ``code`` is its errorCode (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Compound name fields Salesforce computes from their parts: Contact and Lead ``Name``
# (FirstName + LastName) is read-only and queryable, e.g. ``SELECT Id, Name FROM
# Contact``. https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/compound_fields_names.htm
COMPOUND_NAME = FieldSpec("Name", "string", label="Full Name", length=121, updateable=False)
COMPOUND_NAME_OBJECTS = frozenset({"Contact", "Lead"})


def field_value(obj: str, rec: Mapping[str, Any], name: str) -> Any:
    """The value of field ``name`` of a stored record, computing compound fields."""
    if name == "Name" and obj in COMPOUND_NAME_OBJECTS:
        parts = [str(v) for v in (rec.get("FirstName"), rec.get("LastName")) if v]
        return " ".join(parts) or None
    return rec.get(name)


class SchemaView(Protocol):
    """What the compiler needs from the emulator: fields and parent lookups."""

    def canonical_object(self, name: str) -> str | None:
        """The API name of object ``name`` (any case), or None when unknown."""
        ...

    def fields_of(self, obj: str) -> Mapping[str, FieldSpec]:
        """Fields of the (canonically named) ``obj`` keyed by lower-cased name."""
        ...

    def lookup(self, obj: str, record_id: str) -> dict[str, Any] | None:
        """The stored record ``record_id`` of ``obj``, or None."""
        ...


def sf_datetime(value: datetime) -> str:
    """Render an aware datetime as Salesforce does: ``2026-11-02T10:15:30.000+0000``."""
    value = value.astimezone(UTC)
    return f"{value.strftime(SF_DATETIME_FORMAT)}.{value.microsecond // 1000:03d}+0000"


def parse_sf_datetime(text: str) -> datetime:
    """Parse the datetime forms Salesforce accepts (Z, +00:00, +0000, with or without ms)."""
    t = text.strip().replace(" ", "+")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    m = re.fullmatch(r"(.*[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)([+-])(\d{2}):?(\d{2})", t)
    if m:
        t = f"{m.group(1)}{m.group(2)}{m.group(3)}:{m.group(4)}"
    value = datetime.fromisoformat(t)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\"}
_ESCAPES_LIKE = {"%": "\\%", "_": "\\_"}
_KEYWORDS = frozenset(
    {
        "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc",
        "desc", "nulls", "first", "last", "limit", "offset", "true", "false", "null",
        "count", "group", "having", "with", "for",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Token:
    kind: str  # string | datetime | date | number | ident | keyword | op | punct | end
    text: str
    pos: int


def tokenize(soql: str) -> list[Token]:
    """Split ``soql`` into tokens; MALFORMED_QUERY on anything unexpected."""
    out: list[Token] = []
    pos = 0
    while pos < len(soql):
        m = _TOKEN.match(soql, pos)
        if m is None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{soql[pos : pos + 20]}'")
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "string":
            text = _unescape(text[1:-1])
        elif kind == "ident" and text.lower() in _KEYWORDS:
            kind, text = "keyword", text.lower()
        if kind != "ws":
            out.append(Token(kind, text, pos))
        pos = m.end()
    out.append(Token("end", "", pos))
    return out


def _unescape(body: str) -> str:
    chars: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _ESCAPES:
                chars.append(_ESCAPES[nxt])
            elif nxt in _ESCAPES_LIKE:  # kept escaped: only LIKE gives it meaning
                chars.append(_ESCAPES_LIKE[nxt])
            else:
                raise SoqlError(
                    "MALFORMED_QUERY", f"Invalid string literal: unknown escape \\{nxt}"
                )
            i += 2
        else:
            chars.append(c)
            i += 1
    return "".join(chars)


# --------------------------------------------------------------------------- compiled query

Getter = Callable[[dict[str, Any]], Any]
Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Column:
    """One selected field: ``path`` as written canonically (``Owner.Email``)."""

    path: str
    getter: Getter
    relationship: str | None  # "Owner" for Owner.Email
    target: str | None  # object of the relationship
    field: str  # field name on its own object
    parent: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None


@dataclass(frozen=True)
class OrderKey:
    getter: Getter
    desc: bool
    nulls_first: bool
    field: str


@dataclass(frozen=True)
class CompiledQuery:
    obj: str
    columns: tuple[Column, ...]
    count_only: bool
    predicate: Predicate | None
    order: tuple[OrderKey, ...]
    limit: int | None
    offset: int
    # A top-level ``SystemModstamp >``/``>=`` bound: lets the emulator start from its index.
    modstamp_floor: tuple[str, bool] | None  # (value, inclusive)
    # True when the ORDER BY is ``SystemModstamp [ASC][, Id [ASC]]`` (index order).
    index_order: bool

    def render(self, rec: dict[str, Any], version: str) -> dict[str, Any]:
        """The record as the REST API returns it (with ``attributes``)."""
        out: dict[str, Any] = {"attributes": _attributes(self.obj, rec.get("Id"), version)}
        for col in self.columns:
            if col.relationship is None:
                out[col.field] = col.getter(rec)
                continue
            if col.relationship not in out:
                ref = col.parent(rec) if col.parent is not None else None
                out[col.relationship] = (
                    None
                    if ref is None
                    else {"attributes": _attributes(col.target or self.obj, ref.get("Id"), version)}
                )
            nested = out[col.relationship]
            if nested is not None:
                nested[col.field] = col.getter(rec)
        return out

    def flat(self, rec: dict[str, Any]) -> list[Any]:
        """The selected values in column order (Bulk API CSV rows)."""
        return [col.getter(rec) for col in self.columns]


def _attributes(obj: str, record_id: Any, version: str) -> dict[str, str]:
    return {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{record_id}"}


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, soql: str, schema: SchemaView) -> None:
        self.toks = tokenize(soql)
        self.i = 0
        self.schema = schema
        self.obj = ""
        self.fields: Mapping[str, FieldSpec] = {}

    # token helpers
    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept_kw(self, *words: str) -> bool:
        tok = self.peek()
        if tok.kind == "keyword" and tok.text in words:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            self.fail(f"expecting '{word.upper()}'")

    def expect_punct(self, p: str) -> None:
        tok = self.next()
        if tok.kind != "punct" or tok.text != p:
            self.i -= 1
            self.fail(f"expecting '{p}'")

    def fail(self, what: str) -> None:
        tok = self.peek()
        found = tok.text or "end of query"
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{found}' ({what})")

    # grammar
    def parse(self) -> CompiledQuery:
        self.expect_kw("select")
        count_only = False
        raw_fields: list[str] = []
        if self.peek().kind == "keyword" and self.peek().text == "count":
            self.next()
            self.expect_punct("(")
            self.expect_punct(")")
            count_only = True
        else:
            while True:
                tok = self.next()
                if tok.kind != "ident":
                    self.i -= 1
                    self.fail("expecting a field name")
                raw_fields.append(tok.text)
                if not (self.peek().kind == "punct" and self.peek().text == ","):
                    break
                self.next()
        self.expect_kw("from")
        tok = self.next()
        if tok.kind != "ident":
            self.i -= 1
            self.fail("expecting an object name")
        obj = self.schema.canonical_object(tok.text)
        if obj is None:
            raise SoqlError(
                "INVALID_TYPE",
                f"sObject type '{tok.text}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name.",
            )
        self.obj = obj
        self.fields = self.schema.fields_of(obj)
        columns: list[Column] = []
        seen: set[str] = set()
        for name in raw_fields:
            col = self.column(name)
            if col.path.lower() in seen:
                raise SoqlError("MALFORMED_QUERY", f"duplicate field selected: {col.path}")
            seen.add(col.path.lower())
            columns.append(col)
        predicate: Predicate | None = None
        floor: tuple[str, bool] | None = None
        if self.accept_kw("where"):
            predicate, floor = self.condition(top=True)
        order: list[OrderKey] = []
        if self.accept_kw("order"):
            if count_only:
                self.fail("ORDER BY is not allowed with COUNT()")
            self.expect_kw("by")
            while True:
                tok = self.next()
                if tok.kind != "ident":
                    self.i -= 1
                    self.fail("expecting a field name")
                col = self.column(tok.text)
                desc = False
                if self.accept_kw("desc"):
                    desc = True
                else:
                    self.accept_kw("asc")
                nulls_first = not desc
                if self.accept_kw("nulls"):
                    if self.accept_kw("first"):
                        nulls_first = True
                    else:
                        self.expect_kw("last")
                        nulls_first = False
                order.append(OrderKey(col.getter, desc, nulls_first, col.path))
                if not (self.peek().kind == "punct" and self.peek().text == ","):
                    break
                self.next()
        limit: int | None = None
        offset = 0
        if self.accept_kw("limit"):
            limit = self.integer()
        if self.accept_kw("offset"):
            offset = self.integer()
            if offset > MAX_OFFSET:
                raise SoqlError(
                    "NUMBER_OUTSIDE_VALID_RANGE", f"Maximum SOQL offset allowed is {MAX_OFFSET}"
                )
        if self.peek().kind != "end":
            self.fail("expecting end of query")
        index_order = [k.field for k in order] in (
            ["SystemModstamp"],
            ["SystemModstamp", "Id"],
        ) and not any(k.desc for k in order)
        return CompiledQuery(
            obj=self.obj,
            columns=tuple(columns),
            count_only=count_only,
            predicate=predicate,
            order=tuple(order),
            limit=limit,
            offset=offset,
            modstamp_floor=floor,
            index_order=index_order,
        )

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or not tok.text.isdigit():
            self.i -= 1
            self.fail("expecting a non-negative integer")
        return int(tok.text)

    def column(self, name: str) -> Column:
        parts = name.split(".")
        if len(parts) == 1:
            spec = self.fields.get(name.lower())
            if spec is None:
                raise _no_such_column(name, self.obj)
            fname = spec.name
            obj = self.obj

            def plain(rec: dict[str, Any]) -> Any:
                return field_value(obj, rec, fname)

            return Column(fname, plain, None, None, fname)
        if len(parts) != 2:
            raise SoqlError(
                "INVALID_FIELD", f"Didn't understand relationship '{name}' in field path."
            )
        rel, sub = parts
        ref_field = None
        target = None
        for spec in self.fields.values():
            info = REFERENCES.get(spec.name)
            if info and info[0].lower() == rel.lower():
                ref_field, target = spec.name, info[1] or self.obj
                rel = info[0]
                break
        if ref_field is None or target is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{rel}' in field path. If you are attempting to "
                "use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name.",
            )
        target_fields = self.schema.fields_of(target)
        spec = target_fields.get(sub.lower())
        if spec is None:
            raise _no_such_column(sub, target)
        schema = self.schema
        sub_name = spec.name

        def find_parent(
            rec: dict[str, Any], rf: str = ref_field, t: str = target
        ) -> dict[str, Any] | None:
            ref = rec.get(rf)
            return schema.lookup(t, ref) if ref else None

        def getter(rec: dict[str, Any]) -> Any:
            parent = find_parent(rec)
            return field_value(target, parent, sub_name) if parent is not None else None

        return Column(f"{rel}.{sub_name}", getter, rel, target, sub_name, find_parent)

    def spec_of(self, col: Column) -> FieldSpec:
        fields = (
            self.fields if col.relationship is None else self.schema.fields_of(col.target or "")
        )
        return fields[col.field.lower()]

    def condition(self, *, top: bool = False) -> tuple[Predicate, tuple[str, bool] | None]:
        first, floor = self.unary()
        if not top:
            floor = None
        preds = [first]
        joiner: str | None = None
        while self.peek().kind == "keyword" and self.peek().text in ("and", "or"):
            word = self.next().text
            if joiner is not None and word != joiner:
                self.i -= 1
                self.fail("use parentheses when mixing AND and OR")
            joiner = word
            pred, sub_floor = self.unary()
            if top and word == "and" and sub_floor is not None:
                floor = _tighter(floor, sub_floor)
            preds.append(pred)
        if joiner == "or":
            floor = None
            return (lambda rec: any(p(rec) for p in preds)), None
        if len(preds) == 1:
            return first, floor
        return (lambda rec: all(p(rec) for p in preds)), floor

    def unary(self) -> tuple[Predicate, tuple[str, bool] | None]:
        if self.accept_kw("not"):
            inner, _ = self.unary()
            return (lambda rec: not inner(rec)), None
        if self.peek().kind == "punct" and self.peek().text == "(":
            self.next()
            pred, _ = self.condition()
            self.expect_punct(")")
            return pred, None
        return self.comparison()

    def comparison(self) -> tuple[Predicate, tuple[str, bool] | None]:
        tok = self.next()
        if tok.kind != "ident":
            self.i -= 1
            self.fail("expecting a field name")
        col = self.column(tok.text)
        spec = self.spec_of(col)
        get = col.getter
        negate = self.accept_kw("not")
        if self.accept_kw("in"):
            self.expect_punct("(")
            values: list[Any] = []
            while True:
                values.append(self.literal(spec))
                if self.peek().kind == "punct" and self.peek().text == ",":
                    self.next()
                    continue
                break
            self.expect_punct(")")
            norm = _normaliser(spec)
            wanted = {norm(v) for v in values}
            if negate:
                return (lambda rec: norm(get(rec)) not in wanted), None
            return (lambda rec: norm(get(rec)) in wanted), None
        if self.accept_kw("like"):
            if spec.type not in TEXT_TYPES | ID_TYPES:
                raise SoqlError("INVALID_FIELD", f"invalid operator on {spec.type} field: LIKE")
            pat_tok = self.next()
            if pat_tok.kind != "string":
                self.i -= 1
                self.fail("expecting a string after LIKE")
            rx = _like_regex(pat_tok.text)

            def like(rec: dict[str, Any]) -> bool:
                v = get(rec)
                return v is not None and rx.fullmatch(str(v)) is not None

            if negate:
                return (lambda rec: not like(rec)), None
            return like, None
        if negate:
            self.fail("expecting IN or LIKE after NOT")
        op_tok = self.next()
        if op_tok.kind != "op":
            self.i -= 1
            self.fail("expecting an operator")
        op = "!=" if op_tok.text == "<>" else op_tok.text
        value = self.literal(spec)
        pred = _compare(get, op, value, spec)
        floor = None
        if (
            col.relationship is None
            and spec.name == "SystemModstamp"
            and op in (">", ">=")
            and value is not None
        ):
            floor = (value, op == ">=")
        return pred, floor

    def literal(self, spec: FieldSpec) -> Any:
        tok = self.next()
        kind = tok.kind
        if kind == "keyword" and tok.text == "null":
            return None
        t = spec.type
        bad = SoqlError(
            "INVALID_FIELD",
            f"value of filter criterion for field '{spec.name}' must be of type {_soap_type(t)} "
            "and should not be enclosed in quotes"
            if kind == "string"
            else f"value of filter criterion for field '{spec.name}' must be of type {_soap_type(t)}",
        )
        if kind == "keyword" and tok.text in ("true", "false"):
            if t != "boolean":
                raise bad
            return tok.text == "true"
        if t == "boolean":
            raise bad
        if kind == "datetime":
            if t != "datetime":
                raise bad
            try:
                return sf_datetime(parse_sf_datetime(tok.text))
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", f"invalid datetime: {tok.text}") from None
        if kind == "date":
            if t != "date":
                raise bad
            return tok.text
        if kind == "number":
            if t not in NUMBER_TYPES:
                raise bad
            return float(tok.text) if "." in tok.text else int(tok.text)
        if kind == "string":
            if t not in TEXT_TYPES | ID_TYPES:
                raise bad
            return tok.text.replace("\\%", "%").replace("\\_", "_")
        self.i -= 1
        self.fail("expecting a value")
        return None  # pragma: no cover


def _no_such_column(name: str, obj: str) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"\n{name}\n^\nERROR at Row:1:Column:1\nNo such column '{name}' on entity '{obj}'. If you are "
        "attempting to use a custom field, be sure to append the '__c' after the custom field "
        "name. Please reference your WSDL or the describe call for the appropriate names.",
    )


def _soap_type(t: str) -> str:
    return {
        "datetime": "dateTime",
        "date": "date",
        "boolean": "boolean",
        "int": "int",
        "double": "double",
        "currency": "currency",
        "percent": "percent",
        "id": "id",
        "reference": "reference",
    }.get(t, "string")


def _tighter(a: tuple[str, bool] | None, b: tuple[str, bool]) -> tuple[str, bool]:
    if a is None:
        return b
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return (a[0], a[1] and b[1])


def _normaliser(spec: FieldSpec) -> Callable[[Any], Any]:
    if spec.type in TEXT_TYPES:
        return lambda v: v.casefold() if isinstance(v, str) else v
    return lambda v: v


def _compare(get: Getter, op: str, value: Any, spec: FieldSpec) -> Predicate:
    norm = _normaliser(spec)
    if value is None:
        if op == "=":
            return lambda rec: get(rec) is None
        if op == "!=":
            return lambda rec: get(rec) is not None
        return lambda rec: False
    want = norm(value)
    if op == "=":
        return lambda rec: norm(get(rec)) == want
    if op == "!=":
        return lambda rec: norm(get(rec)) != want
    cmp: Callable[[Any, Any], bool] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]

    def ordered(rec: dict[str, Any]) -> bool:
        v = get(rec)
        if v is None:
            return False
        try:
            return cmp(norm(v), want)
        except TypeError:
            return False

    return ordered


def _like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def compile_soql(soql: str, schema: SchemaView) -> CompiledQuery:
    """Parse and compile ``soql`` against ``schema``; raises ``SoqlError``."""
    if not soql or not soql.strip():
        raise SoqlError("MALFORMED_QUERY", "empty query")
    return _Parser(soql, schema).parse()


def sort_records(
    records: list[dict[str, Any]], order: tuple[OrderKey, ...]
) -> list[dict[str, Any]]:
    """Sort by several keys (stable sorts, last key first); nulls placed per key."""
    out = list(records)
    for key in reversed(order):
        get = key.getter
        nulls = [r for r in out if get(r) is None]
        vals = [r for r in out if get(r) is not None]

        def sort_key(r: dict[str, Any], g: Getter = get) -> Any:
            v = g(r)
            return v.casefold() if isinstance(v, str) else v

        vals.sort(key=sort_key, reverse=key.desc)
        out = nulls + vals if key.nulls_first else vals + nulls
    return out
