"""Tier-2 matching for opportunities: a calibrated Fellegi-Sunter scorer per account.

Deals are compared only within one canonical account (the block): two deals of
different accounts never match. Inside an account the evidence is

- the deal name with the account's name stripped ("Horizonbase - New Business" and
  "Horizonbase New Business" both read ``new business``; punctuation, case, accents and
  legal forms do not count), with its period tokens (``2025``, ``fy26``, ``q3``) apart:
  the same words for another period is another deal;
- close date (exact, moved a week, a month, a quarter, half a year, about a year);
- amount (exact, within 2 %, 25 %, 60 %); currency; stage; owner; type.

Why not splink (as for accounts and contacts): the blocks are a handful of deals, and
every weight must be the evidence *given the same account* — two deals of one customer
share the owner, the currency and often the name far more than two random deals.
splink estimates u from random pairs across the whole input (where owner and name
almost never agree), so it would overweight exactly the fields that do not tell deals
of one account apart; and its DuckDB session costs more than scoring the few pairs a
cycle creates. The m/u probabilities below are curated per level (like the priors of
``sync.dedupe_models``) and checked by ``bench/match_opportunity.py`` against the
sandbox's ground truth and by hand-written hostile pairs in the tests.

Decisions: a pair of entities from *different* systems (no system in common) is
linked at ``auto_link`` (``AUTO_LINK``, 0.90) when the names agree, from
``NAMES_DIFFER_LINK`` (0.99) when they do not; a pair sharing a system (linking it would make one system
hold two records of one deal) is linked only when near-certain (``NEAR_CERTAIN`` with
the same name words and close day), else it goes to review from ``review_from`` on.
Such a pair is linked only when its two records in the shared system agree on name
words, close date and amount (``exact_copy``: one deal entered twice there; an amount
left blank on one or both counts as agreeing only with the same stage and owner), and
is scored as those records (its entity may show another system's moved date): two
renewals of one name a month apart in one system are two deals, however alike.
Clustering refuses a link that would put two records of one system into one deal
unless that very pair is near-certain. A deal without an account is placed in the
account(s) its name starts with (``AccountIndex``), with its prior shared out among
them; a cluster never joins deals of two accounts.

The same merge ledger, review queue and undo as accounts and contacts
(``sync.match.Deduper``); contact roles follow the link (``follow_contact_roles``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from rapidfuzz import fuzz, process

from mapping.normalize import LEGAL_SUFFIXES, company_match_key
from sync.dedupe import MAX_CLUSTER_SIZE, MatchResult, Pair
from sync.dedupe_keys import text_key
from sync.match_report import DedupeReport

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from sync.store import Store


class Deduper(Protocol):
    """What this module needs of ``sync.match.Deduper`` (a protocol, so the two
    modules do not import each other)."""

    store: Store
    cfg: dict[str, Any]
    now: Callable[[], datetime]

    def _policy(self, object_type: str) -> str: ...

    def _apply(self, object_type: str, result: Any, report: DedupeReport, *, dry_run: bool) -> None: ...

log = logging.getLogger(__name__)

OBJECT = "opportunity"
# Pairs of entities sharing a system are linked only at or above this probability.
NEAR_CERTAIN = 0.998
# Pairs from different systems are linked from this probability on. The scorer is
# cautious there: on the sandbox data (seeds 7 and 42, 10,000 accounts, bench
# ``match_opportunity --bands``) 224 of 225 cross-system pairs in [0.90, 0.99) are one
# deal, and 29 of 36 in [0.80, 0.90).
AUTO_LINK = 0.90
# ... but a pair whose names do not agree (different words, or another period) is
# linked only from this probability on (the same amount and close day of two deals of
# one account with different names is a coincidence a customer's deals often show).
NAMES_DIFFER_LINK = 0.99
# Prior: the chance that two opportunity entities of one account are one deal.
PRIOR_MATCH = 0.20
MODEL_NAME = "opportunity-fs-1"
# A deal without an account placed in one by its name (``AccountIndex``): the pair's
# odds are halved for the doubt.
INFERRED_ACCOUNT_WEIGHT = -1.0
# How alike (rapidfuzz ratio, 0-100) a deal name's leading words and an account name
# must be to read the account from the deal; and a word of the two to be one word.
ACCOUNT_NAME_SIMILARITY = 90.0
FUZZY_WORD = 85.0

# (level label, m, u) per comparison; u is *within one account*. Levels are tried in
# order; "missing" (either side blank) adds no evidence.
LEVELS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "name": (
        # how many of the account's deals one system holds with these words: a name
        # each system gives one deal says more than one every yearly renewal carries
        ("same words, one deal per system", 0.58, 0.008),
        ("same words, two deals in a system", 0.25, 0.06),
        ("same words, three or more in a system", 0.08, 0.06),
        ("same words, another period", 0.0002, 0.05),
        # a deal renamed in one system mostly stays similar ("Expansion" → "Expansion Q3")
        ("similar", 0.08, 0.05),
        ("different", 0.01, 0.75),
    ),
    "close_date": (
        ("same day", 0.80, 0.004),
        ("within a week", 0.05, 0.02),
        ("within a month", 0.07, 0.06),
        ("within a quarter", 0.06, 0.15),
        ("within half a year", 0.012, 0.20),
        ("within ten months", 0.005, 0.20),
        ("about a year or more", 0.0001, 0.36),  # a recurring deal: next year's is another
    ),
    "amount": (
        ("same", 0.85, 0.008),
        ("within 2%", 0.02, 0.01),
        ("within 25%", 0.05, 0.12),
        ("within 60%", 0.05, 0.20),
        ("different", 0.03, 0.65),
    ),
    "currency": (("same", 0.97, 0.85), ("different", 0.03, 0.15)),
    "stage": (("same", 0.85, 0.30), ("different", 0.15, 0.70)),
    "owner": (("same", 0.93, 0.80), ("different", 0.07, 0.20)),
    "type": (("same", 0.92, 0.50), ("different", 0.08, 0.50)),
}

_WORDS = re.compile(r"\w+")
_PERIOD = re.compile(r"\d")


@dataclass(frozen=True)
class Options:
    """Thresholds for one run (``review_from <= auto_link <= near_certain``)."""

    auto_link: float = AUTO_LINK
    review_from: float = 0.80
    near_certain: float = NEAR_CERTAIN
    max_cluster_size: int = MAX_CLUSTER_SIZE

    def __post_init__(self) -> None:
        if not 0 < self.review_from <= self.auto_link <= self.near_certain <= 1:
            raise ValueError("need 0 < review_from <= auto_link <= near_certain <= 1")


@dataclass(frozen=True)
class Features:
    """One opportunity entity, read for comparison."""

    id: str
    account: str | None
    words: frozenset[str] | None  # name words without the account's name nor periods
    periods: frozenset[str]  # name words with a digit: years, quarters, fiscal years
    close: date | None
    amount: Decimal | None
    currency: str | None
    stage: str | None
    owner: str | None
    type: str | None
    systems: frozenset[str]
    # the account was read from the deal's name (the record has no account)
    inferred: bool = False
    # how many deals of the block (this one included) carry the same name words
    namesakes: int = 1
    # inferred: how many accounts the deal's name fits equally well
    candidates: int = 1
    # the entity's records: (system, name words, period words, close date, amount)
    copies: frozenset[tuple[str, frozenset[str], frozenset[str], date, Decimal | None]] = frozenset()


# --------------------------------------------------------------------------- features


@lru_cache(maxsize=1 << 16)
def _account_words(account_name: str | None) -> tuple[str, ...]:
    """The account name's words, legal form and punctuation aside."""
    if not isinstance(account_name, str):
        return ()
    return tuple(company_match_key(account_name).split())


def _deal_words(name: Any) -> list[str]:
    key = text_key(name)
    return list(_WORDS.findall(key)) if key else []


def _similar(a: str, b: str) -> bool:
    return a == b or (len(a) >= 4 and len(b) >= 4 and fuzz.ratio(a, b) >= FUZZY_WORD)


def strip_account(words: Sequence[str], account_name: str | None) -> list[str]:
    """``words`` without the account's name: leading words that spell it (typos, a name
    written in one word, a legal form allowed), then its words anywhere else."""
    account = _account_words(account_name)
    if not account:
        return list(words)
    i = j = 0
    while i < len(words) and j < len(account):
        rest = "".join(account[j:])
        if _similar(words[i], rest):  # "horizonbase" for "horizon base"
            i, j = i + 1, len(account)
        elif _similar(words[i], account[j]):
            i, j = i + 1, j + 1
        elif i + 1 < len(words) and _similar(words[i] + words[i + 1], account[j]):  # "horizon base"
            i, j = i + 2, j + 1
        else:
            break
    while i < len(words) and words[i] in LEGAL_SUFFIXES and j == len(account):
        i += 1
    exact = set(account) | {"".join(account)}
    return [w for w in words[i:] if w not in exact]


def name_words(name: Any, account_name: str | None = None) -> tuple[frozenset[str], frozenset[str]] | None:
    """(words, period words) of a deal name with the account's name stripped; None when
    nothing is left (a deal named after its account only says nothing)."""
    words = strip_account(_deal_words(name), account_name)
    periods = frozenset(w for w in words if _PERIOD.search(w))
    plain = frozenset(w for w in words if w not in periods)
    if not plain and not periods:
        return None
    return plain, periods


def _date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().casefold()
    return text or None


def features(record: Mapping[str, Any], *, inferred: bool = False) -> Features:
    """A match record (``sync.store.opportunity_match_records``) read for comparison."""
    words = name_words(record.get("name"), record.get("account_name"))
    return Features(
        id=str(record["id"]),
        account=str(record["account_id"]) if record.get("account_id") else None,
        words=words[0] if words is not None else None,
        periods=words[1] if words is not None else frozenset(),
        close=_date(record.get("close_date")),
        amount=_decimal(record.get("amount")),
        currency=_text(record.get("currency")),
        stage=_text(record.get("stage")),
        owner=_text(record.get("owner_email")),
        type=_text(record.get("type")),
        systems=frozenset(record.get("systems") or ()),
        inferred=inferred,
        copies=_copies(record),
    )


def _copies(record: Mapping[str, Any]) -> frozenset[tuple[str, frozenset[str], frozenset[str], date, Decimal | None]]:
    """The record's ``copies`` (its entity's records, ``sync.store.opportunity_record_copies``)
    read for the exact-copy test; a copy without a name or a close date says nothing."""
    out = set()
    copies = record.get("copies")
    if copies is None and len(record.get("systems") or ()) == 1:  # one remote record: itself
        copies = [{**record, "system": record["systems"][0]}]
    for copy in copies or ():
        words, close = name_words(copy.get("name"), record.get("account_name")), _date(copy.get("close_date"))
        if words is not None and close is not None and copy.get("system"):
            out.add((str(copy["system"]), words[0], words[1], close, _decimal(copy.get("amount"))))
    return frozenset(out)


def exact_copy(a: Features, b: Features) -> tuple[Features, Features, str] | None:
    """Two entities holding one record each, in one system, with the same name words,
    close date and amount (or the amount left blank on one or both): one deal entered
    twice there (an import, a double click, a copy whose amount was never typed).
    Returns the two read as those records (the reconciled values may come from another
    system that moved the date) and the system; None when there is no such pair. An
    amount that differs is never a copy; a blank one is weighed by ``near_certain``."""
    if not (a.systems & b.systems):
        return None
    found: tuple[Features, Features, str] | None = None
    for ca in sorted(a.copies, key=repr):
        for cb in sorted(b.copies, key=repr):
            if ca[:4] != cb[:4] or (ca[4] != cb[4] and ca[4] is not None and cb[4] is not None):
                continue
            system, words, periods, close, amount = ca
            pair = (replace(a, words=words, periods=periods, close=close, amount=amount),
                    replace(b, words=words, periods=periods, close=close, amount=cb[4]), system)
            if ca[4] == cb[4]:
                return pair  # the same amount (or both blank): the closest copy there is
            found = found or pair
    return found


class AccountIndex:
    """Reads the account of a deal that has none from its name: the account whose name
    (legal form aside, a typo allowed) the deal's name starts with ("Ember Industries -
    Renewal" → Ember Industries Co.). A name several accounts fit equally well (two
    companies of one name) places the deal in each of them, with its prior shared out
    among them; it links only where one account's deal fits (``cluster``)."""

    def __init__(self) -> None:
        # first 4 (and 2) letters of the name → (names in one word, their account ids)
        self._by_head: dict[str, tuple[list[str], list[str]]] = {}
        self._by_head2: dict[str, tuple[list[str], list[str]]] = {}
        self.names: dict[str, str | None] = {}

    def add(self, account_id: str, account_name: Any) -> None:
        if account_id in self.names:
            return
        self.names[account_id] = account_name
        words = _account_words(account_name)
        if words:
            joined = "".join(words)
            for index, key in ((self._by_head, joined[:4]), (self._by_head2, joined[:2])):
                names, ids = index.setdefault(key, ([], []))
                names.append(joined)
                ids.append(account_id)

    def infer(self, deal_name: Any) -> list[str]:
        """The accounts the deal's name fits best (several when their names are alike)."""
        words = _deal_words(deal_name)
        if len(words) < 2:
            return []
        found = self._infer(words, self._by_head.get("".join(words)[:4], ([], [])))
        # a typo in the first letters ("Laaternyard Ltd" for Lanternyard): the wider bucket
        return found or self._infer(words, self._by_head2.get("".join(words)[:2], ([], [])))

    @staticmethod
    def _infer(words: list[str], bucket: tuple[list[str], list[str]]) -> list[str]:
        names, ids = bucket
        best: tuple[float, float] = (0.0, 0.0)
        found: set[str] = set()
        for k in range(1, len(words)):  # at least one word left for the deal itself
            prefix = "".join(words[:k])
            for name, ratio, i in process.extract(prefix, names, scorer=fuzz.ratio, limit=None,
                                                  score_cutoff=ACCOUNT_NAME_SIMILARITY):
                # the letters both spell (the longest name the deal starts with wins),
                # then how alike ("Meridian Manufacturing" over "Meridiannest Manufacturing")
                spelled = (round(ratio * (len(prefix) + len(name)) / 200, 1), ratio)
                if spelled > best:
                    best, found = spelled, {ids[i]}
                elif spelled == best:
                    found.add(ids[i])
        return sorted(found)


# --------------------------------------------------------------------------- scoring


def _name_level(a: Features, b: Features) -> str | None:
    if a.words is None or b.words is None:
        return None
    if a.words == b.words:
        if a.periods != b.periods:
            return "same words, another period"
        carriers = max(a.namesakes, b.namesakes)
        return ("same words, one deal per system" if carriers <= 1 else
                "same words, two deals in a system" if carriers == 2 else "same words, three or more in a system")
    if a.periods != b.periods and a.periods and b.periods:
        return "different"
    left, right = " ".join(sorted(a.words)), " ".join(sorted(b.words))
    if left and right and fuzz.ratio(left, right) >= 85:
        return "similar"
    return "different"


def _close_level(a: Features, b: Features) -> str | None:
    if a.close is None or b.close is None:
        return None
    days = abs((a.close - b.close).days)
    for limit, label in ((0, "same day"), (7, "within a week"), (31, "within a month"),
                         (92, "within a quarter"), (183, "within half a year"), (300, "within ten months")):
        if days <= limit:
            return label
    return "about a year or more"


def _amount_level(a: Features, b: Features) -> str | None:
    if a.amount is None or b.amount is None:
        return None
    if a.amount == b.amount:
        return "same"
    top = max(abs(a.amount), abs(b.amount))
    gap = abs(a.amount - b.amount) / top
    for limit, label in ((Decimal("0.02"), "within 2%"), (Decimal("0.25"), "within 25%"), (Decimal("0.6"), "within 60%")):
        if gap <= limit:
            return label
    return "different"


def _same(x: str | None, y: str | None) -> str | None:
    if x is None or y is None:
        return None
    return "same" if x == y else "different"


_WEIGHTS: dict[str, dict[str, float]] = {
    comparison: {label: math.log2(m / u) for label, m, u in levels} for comparison, levels in LEVELS.items()
}
_PRIOR_WEIGHT = math.log2(PRIOR_MATCH / (1 - PRIOR_MATCH))


def compare(a: Features, b: Features) -> tuple[float, dict[str, str]]:
    """(match probability, comparison → level label) for two deals of one account."""
    levels = {
        "name": _name_level(a, b),
        "close_date": _close_level(a, b),
        "amount": _amount_level(a, b),
        "currency": _same(a.currency, b.currency),
        "stage": _same(a.stage, b.stage),
        "owner": _same(a.owner, b.owner),
        "type": _same(a.type, b.type),
    }
    weight = _PRIOR_WEIGHT
    evidence: dict[str, str] = {}
    if a.inferred or b.inferred:
        weight += INFERRED_ACCOUNT_WEIGHT - math.log2(max(a.candidates, b.candidates))
        evidence["account"] = ("read from the deal name" if max(a.candidates, b.candidates) == 1 else
                               f"read from the deal name ({max(a.candidates, b.candidates)} accounts fit)")
    for comparison, label in levels.items():
        if label is None:
            evidence[comparison] = "missing"
            continue
        weight += _WEIGHTS[comparison][label]
        evidence[comparison] = label
    probability = 1.0 / (1.0 + 2.0 ** -weight) if weight > -1000 else 0.0
    return probability, evidence


def score(a: Mapping[str, Any], b: Mapping[str, Any]) -> Pair:
    """Score two match records (a convenience for tests and explanations)."""
    fa, fb = features(a), features(b)
    p, evidence = compare(fa, fb)
    if fa.account is None or fa.account != fb.account:
        p, evidence = 0.0, {**evidence, "account": "different"}
    left, right = sorted((fa.id, fb.id))
    return Pair(left, right, p, evidence)


def model_json() -> str:
    """The scorer's parameters, kept in the store like a trained splink model."""
    return json.dumps({"model": MODEL_NAME, "prior_match": PRIOR_MATCH, "near_certain": NEAR_CERTAIN,
                       "levels": {c: [list(level) for level in lv] for c, lv in LEVELS.items()}}, sort_keys=True)


# --------------------------------------------------------------------------- matching


def match_opportunities(
    records: Iterable[Mapping[str, Any]],
    *,
    new_ids: Iterable[str] | None = None,
    options: Options | None = None,
    rejected: Iterable[tuple[str, str]] = (),
) -> MatchResult:
    """Score the deals of each account pairwise; link, queue for review, cluster.

    Records: ``id``, ``account_id`` (canonical; records without one are never
    matched), ``account_name``, ``name``, ``amount``, ``currency``, ``stage``,
    ``close_date``, ``type``, ``owner_email`` and ``systems`` (the systems holding the
    entity's records; the single record's system when matching raw records). With
    ``new_ids`` only pairs with at least one new record are scored (incremental);
    ``rejected`` pairs (an admin's no, an undone link) are never linked nor queued.
    """
    opts = options or Options()
    blocks: dict[str, list[Features]] = {}
    index = AccountIndex()
    orphans = []
    for record in records:
        if not record.get("account_id"):
            orphans.append(record)
            continue
        f = features(record)
        index.add(str(record["account_id"]), record.get("account_name"))
        blocks.setdefault(str(f.account), []).append(f)
    for record in orphans:
        candidates = index.infer(record.get("name"))
        for account in candidates:
            placed = {**record, "account_id": account, "account_name": index.names[account]}
            blocks[account].append(replace(features(placed, inferred=True), candidates=len(candidates)))
    for account, block in blocks.items():
        # per name: the most deals one system holds with it (copies of one deal in two
        # systems count once; a duplicate within a system counts)
        carriers = Counter((f.words, f.periods, s) for f in block if f.words is not None for s in f.systems or {""})
        most: dict[tuple[Any, ...], int] = {}
        for (words, periods, _), n in carriers.items():
            most[(words, periods)] = max(n, most.get((words, periods), 0))
        blocks[account] = [replace(f, namesakes=most[(f.words, f.periods)]) if f.words is not None else f
                           for f in block]
    fresh = set(map(str, new_ids)) if new_ids is not None else None
    refused = {(min(a, b), max(a, b)) for a, b in rejected}
    scored: dict[tuple[str, str], tuple[Pair, bool]] = {}  # → (pair, shares a system)
    for block in blocks.values():
        if len(block) < 2:
            continue
        block.sort(key=lambda f: f.id)
        for i, a in enumerate(block):
            for b in block[i + 1:]:
                if fresh is not None and a.id not in fresh and b.id not in fresh:
                    continue
                if (a.id, b.id) in refused:
                    continue
                p, evidence = compare(a, b)
                twice = exact_copy(a, b)
                if twice is not None:
                    p2, evidence2 = compare(twice[0], twice[1])
                    if p2 > p:
                        p, evidence = p2, evidence2
                    evidence = {**evidence, "copy": f"the same deal twice in {twice[2]}"}
                if p >= opts.review_from:
                    best = scored.get((a.id, b.id))
                    if best is None or p > best[0].probability:  # a deal placed in two accounts
                        scored[(a.id, b.id)] = (Pair(a.id, b.id, p, evidence), bool(a.systems & b.systems))
    systems = {f.id: f.systems for block in blocks.values() for f in block}
    accounts = {f.id: f.account for block in blocks.values() for f in block if not f.inferred}
    return _decide(list(scored.values()), systems, accounts, opts)


def near_certain(pair: Pair, opts: Options) -> bool:
    """Sure enough to give one system two records of one deal: the probability at
    ``near_certain`` *and* the same name words, the same close date and the same amount
    (a deal typed again is a copy; one a little off, in a series of same-named renewals,
    is a question for a person). A copy whose amount is blank on one side or both
    (``exact_copy``) stands in for the same amount only if nothing else tells the two
    apart: the same stage and owner, and no other currency or type."""
    ev = pair.evidence
    amount = ev.get("amount")
    blank_copy = (amount == "missing" and "copy" in ev and ev.get("stage") == "same" and ev.get("owner") == "same"
                  and ev.get("currency") != "different" and ev.get("type") != "different")
    return (pair.probability >= opts.near_certain and ev.get("close_date") == "same day"
            and (amount == "same" or blank_copy)
            and ev.get("name", "").startswith("same words,") and "period" not in ev["name"])


def _decide(scored: Sequence[tuple[Pair, bool]], systems: Mapping[str, frozenset[str]],
            accounts: Mapping[str, str | None], opts: Options) -> MatchResult:
    linkable: list[Pair] = []
    review: list[Pair] = []
    for pair, shared in scored:
        # two records of one system become one deal only when they are copies of each other
        if shared:
            sure = near_certain(pair, opts) and "copy" in pair.evidence
        else:
            name = pair.evidence.get("name", "")
            names_agree = name == "similar" or (name.startswith("same words,") and "period" not in name)
            sure = pair.probability >= (opts.auto_link if names_agree else max(opts.auto_link, NAMES_DIFFER_LINK))
        (linkable if sure else review).append(pair)
    kept, refused, warnings = cluster(linkable, systems, opts, accounts)
    clusters = _components(kept)
    review = sorted([*review, *refused], key=lambda p: (-p.probability, p.left, p.right))
    for warning in warnings:
        log.warning("dedupe opportunity: %s", warning)
    return MatchResult(kept, review, clusters, warnings, model_json())


def cluster(
    links: Sequence[Pair], systems: Mapping[str, frozenset[str]], opts: Options,
    accounts: Mapping[str, str | None] | None = None,
) -> tuple[list[Pair], list[Pair], list[str]]:
    """Union the links strongest first; a union that would put two records of one
    system into one deal is refused unless the pair is near-certain, one that would
    join deals of two accounts (through a deal placed in both by its name) is refused,
    and so is one past the size cap. Returns (links kept, links refused, warnings);
    the kept links' connected components are the clusters."""
    accounts = accounts or {}
    parent: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    held: dict[str, frozenset[str]] = {}
    owned: dict[str, frozenset[str]] = {}  # root → the accounts of its deals

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    kept: list[Pair] = []
    refused: list[Pair] = []
    too_big = 0
    for pair in sorted(links, key=lambda p: (-p.probability, p.left, p.right)):
        a, b = find(pair.left), find(pair.right)
        if a == b:
            kept.append(pair)
            continue
        ma, mb = members.get(a, [pair.left]), members.get(b, [pair.right])
        sa = held.get(a, systems.get(pair.left, frozenset()))
        sb = held.get(b, systems.get(pair.right, frozenset()))
        if len(ma) + len(mb) > opts.max_cluster_size:
            too_big += 1
            refused.append(pair)
            continue
        if sa & sb and not near_certain(pair, opts):
            refused.append(pair)
            continue
        aa = owned.get(a, frozenset(x for x in [accounts.get(pair.left)] if x))
        ab = owned.get(b, frozenset(x for x in [accounts.get(pair.right)] if x))
        if aa and ab and aa != ab:
            refused.append(pair)
            continue
        parent[b] = a
        members[a] = ma + mb
        held[a] = sa | sb
        owned[a] = aa | ab
        for gone in (members, held, owned):
            gone.pop(b, None)
        kept.append(pair)
    warnings = []
    if too_big:
        warnings.append(f"cluster size cap {opts.max_cluster_size}: {too_big} link(s) refused and sent to review")
    return kept, refused, warnings


def _components(links: Sequence[Pair]) -> list[list[str]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in links:
        a, b = find(p.left), find(p.right)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for x in list(parent):
        groups.setdefault(find(x), []).append(x)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda c: c[0])


# --------------------------------------------------------------------------- in the store


def options_from(cfg: Mapping[str, Any]) -> Options:
    """The dedupe config's thresholds (``auto_link``, ``review_from``, ``max_cluster_size``)."""
    auto = float(cfg.get("auto_link", AUTO_LINK))
    return Options(auto_link=auto, review_from=float(cfg.get("review_from", 0.80)),
                   near_certain=max(NEAR_CERTAIN, auto), max_cluster_size=int(cfg.get("max_cluster_size", 12)))


def run(deduper: Deduper, *, new_ids: Sequence[str] | None = None, dry_run: bool = False) -> DedupeReport:
    """``Deduper.run_batch`` / ``run_incremental`` for opportunities.

    Batch (``new_ids`` None): every live deal. Incremental: the new deals, plus the deals
    of accounts linked since the last run (their deals now share a block), against the
    stored deals of the same accounts.
    """
    from sync import store as st

    mode = "batch" if new_ids is None else "incremental"
    report = DedupeReport(OBJECT, mode, deduper._policy(OBJECT))
    started = deduper.now()
    since = None
    if new_ids is not None:
        with deduper.store.session() as s:
            model = st.get_match_model(s, OBJECT)
            since = model.matched_until if model is not None else None
    if new_ids is not None and since is None:
        return run(deduper, dry_run=dry_run)  # never matched: score them all, keep the model
    with deduper.store.session() as s:
        if new_ids is None:
            records = st.opportunity_match_records(s)
            fresh: list[str] | None = None
        else:
            touched = st.opportunities_of_accounts_linked_since(s, since) if since is not None else []
            fresh = sorted({*new_ids, *touched})
            mine = st.opportunity_match_records(s, ids=fresh)
            accounts = sorted({r["account_id"] for r in mine if r.get("account_id")})
            if all(r.get("account_id") for r in mine):
                records = st.opportunity_match_records(s, account_ids=accounts)
            else:  # a deal without an account is placed by its name: every account may fit
                records = st.opportunity_match_records(s)
            known = {r["id"] for r in records}
            records += [r for r in mine if r["id"] not in known]
    with deduper.store.session() as s:
        copies = st.opportunity_record_copies(s, [r["id"] for r in records])
    records = [{**r, "copies": copies.get(r["id"], [])} for r in records]
    report.records = len(records) if fresh is None else len(fresh)
    if fresh is not None and not fresh:
        return report
    with deduper.store.session() as s:
        rejected = [pair for pair, state in st.decided_pairs(s, OBJECT).items() if state == "rejected"]
    result = match_opportunities(records, new_ids=fresh, options=options_from(deduper.cfg), rejected=rejected)
    if not dry_run and new_ids is None:
        with deduper.store.session() as s:
            st.save_match_model(s, OBJECT, result.model_json, len(records), deduper.now(), started)
    deduper._apply(OBJECT, result, report, dry_run=dry_run)
    if not dry_run and report.merge_ids:
        with deduper.store.session() as s:
            follow_contact_roles(s, report.merge_ids)
    return report


def contact_roles_from_records(s: Any, ids: Sequence[str]) -> dict[str, list[str]]:
    """Each opportunity's contact roles as its live records name them (the union the
    reconcile derives: contact remote ids → canonical contacts)."""
    from sync import store as st

    refs = st.refs_for_entities(s, OBJECT, list(ids))
    wanted = [rid for rows in refs.values() for r in rows if r.deleted_at is None
              for rid in (r.associations or {}).get("contact", ())]
    contacts = st.refs_for_remote_ids_any_system(s, "contact", wanted) if wanted else {}
    out: dict[str, list[str]] = {}
    for eid in ids:
        found = {contacts[(r.system, rid)] for r in refs.get(eid, []) if r.deleted_at is None
                 for rid in (r.associations or {}).get("contact", ()) if (r.system, rid) in contacts}
        out[eid] = sorted(found)
    return out


def follow_contact_roles(s: Any, merge_ids: Sequence[int]) -> None:
    """The survivor of each opportunity link takes the contact roles of the deals folded
    into it at once (the roles all their records name; the next reconcile agrees)."""
    from sync import store as st

    for merge_id in merge_ids:
        entry = s.get(st.MergeLedgerRow, merge_id)
        if entry is None or entry.object_type != OBJECT:
            continue
        held = st.opportunity_contacts(s, [entry.survivor_id, *entry.merged_ids])
        roles = contact_roles_from_records(s, [entry.survivor_id])[entry.survivor_id]
        union = sorted({*roles, *(c for cs in held.values() for c in cs)})
        st.set_opportunity_contacts(s, entry.survivor_id, union)


def restore_contact_roles(s: Any, merge_id: int) -> None:
    """After undoing an opportunity link: each entity's contact roles as its own records
    name them again."""
    from sync import store as st

    entry = s.get(st.MergeLedgerRow, merge_id)
    if entry is None or entry.object_type != OBJECT:
        return
    s.flush()  # the refs moved back by the undo
    ids = [entry.survivor_id, *entry.merged_ids]
    for eid, roles in contact_roles_from_records(s, ids).items():
        st.set_opportunity_contacts(s, eid, roles)
