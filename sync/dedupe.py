"""Tier-2 probabilistic matching (Fellegi-Sunter with splink on DuckDB) and clustering.

Pure in the house sense: records in, pairs and clusters out; no SQL against our store
(DuckDB here is an in-memory scratch engine owned by one call).

Batch (backfill)::

    result = match_contacts(records)            # records: dicts of canonical fields + "id"
    result.links     # pairs >= auto_link: link them
    result.review    # pairs in [review_from, auto_link): the review queue
    result.clusters  # groups of >= 2 ids after capped clustering of the links
    result.model_json  # the trained model: persist it, feed IncrementalMatcher

Incremental (one cycle's new records against the stored entities)::

    matcher = IncrementalMatcher(model_json, stored_records, object_type="contact")
    result = matcher.match(new_records)   # new↔stored and new↔new pairs only
    matcher.close()

Records are mappings with an ``id`` (any str-able, unique per call) and canonical
fields: contacts ``first_name, last_name, email, phone, title`` plus ``company`` (the
account's name) or ``account_id`` (the canonical account id, used as the company when
no name is given) and optionally ``country`` (phone region); accounts ``name, domain
or website, phone, billing_street, billing_postal_code, industry, country``. Values may
be raw or already normalised. ``Pair.left < Pair.right``; incremental clusters can
contain stored ids (map them to their canonical ids). Under ``MIN_TRAIN_RECORDS`` the
curated priors are used untrained.

Tier 1 (deterministic keys) lives in ``sync.dedupe_keys``.
splink docs: https://moj-analytical-services.github.io/splink/
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import DamerauLevenshtein
from splink import DuckDBAPI, Linker, SettingsCreator
from splink.internals.exceptions import EMTrainingException
from splink.internals.splink_dataframe import SplinkDataFrame

from sync.dedupe_models import ACCOUNT_SPEC, CONTACT_SPEC, MIN_TRAIN_RECORDS, SPECS, ModelSpec

log = logging.getLogger(__name__)

# Pairs at or above this match probability are linked automatically.
AUTO_LINK = 0.99
# Pairs in [REVIEW_FROM, AUTO_LINK) go to the review queue; below it, kept apart.
REVIEW_FROM = 0.80
# A cluster never grows past this many records: a link that would fuse two clusters
# beyond it is refused (sent to review) with a warning.
MAX_CLUSTER_SIZE = 12
# Pairs sampled to estimate u probabilities (capped by the number of possible pairs).
U_SAMPLE_PAIRS = 2_000_000
# EM pairs per training rule at most (deterministically sampled by splink).
EM_MAX_PAIRS = 2_000_000
# ... once the input has at least this many records.
EM_SAMPLE_FROM = 100_000
SEED = 42
# ``MatchOptions.max_review_share`` never cuts a run's queue below this many pairs.
MIN_REVIEW_CAP = 100
# A comparison level never seen among sampled non-matches is taken to occur in at most
# this many non-matching pairs per record (see ``_debias_u``).
UNSEEN_COLLISIONS_PER_RECORD = 1e-3
# No comparison level is taken to occur in fewer matching pairs than this (see ``_floor_m``).
MIN_M_PROBABILITY = 1e-3

Train = Literal["auto", "always", "never"]
# The key of revsync's own notes in a model JSON (how it was trained); not splink's.
MODEL_META = "revsync"


@dataclass(frozen=True)
class Pair:
    """Two records judged by the model; ``evidence`` = comparison → level label."""

    left: str
    right: str
    probability: float
    evidence: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MatchResult:
    """What a match run decided."""

    links: list[Pair]
    review: list[Pair]
    clusters: list[list[str]]
    warnings: list[str]
    model_json: str


@dataclass(frozen=True)
class MatchOptions:
    """Thresholds and training choice for one run."""

    auto_link: float = AUTO_LINK
    review_from: float = REVIEW_FROM
    max_cluster_size: int = MAX_CLUSTER_SIZE
    # "auto": train when there are at least MIN_TRAIN_RECORDS records, else curated priors.
    train: Train = "auto"
    seed: int = SEED
    # The review queue of one run holds at most this many pairs per record matched
    # (the strongest; the rest stay apart, logged; never fewer than MIN_REVIEW_CAP
    # pairs). None: no cap. A doubtful
    # band too big to review (e.g. a data set full of namesakes) is no queue.
    max_review_share: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.review_from <= self.auto_link <= 1:
            raise ValueError("need 0 < review_from <= auto_link <= 1")
        if self.max_review_share is not None and not 0 <= self.max_review_share:
            raise ValueError("max_review_share must be >= 0")
        if self.max_cluster_size < 2:
            raise ValueError("max_cluster_size must be >= 2")


# --------------------------------------------------------------------------- public API


def match_contacts(
    records: Iterable[Mapping[str, Any]],
    *,
    options: MatchOptions | None = None,
    model_json: str | None = None,
) -> MatchResult:
    """Batch-dedupe contacts (canonical contact fields + ``id``; optional ``company``)."""
    return match_records(records, CONTACT_SPEC, options=options, model_json=model_json)


def match_accounts(
    records: Iterable[Mapping[str, Any]],
    *,
    options: MatchOptions | None = None,
    model_json: str | None = None,
) -> MatchResult:
    """Batch-dedupe accounts (canonical account fields + ``id``)."""
    return match_records(records, ACCOUNT_SPEC, options=options, model_json=model_json)


def match_records(
    records: Iterable[Mapping[str, Any]],
    spec: ModelSpec,
    *,
    options: MatchOptions | None = None,
    model_json: str | None = None,
    train_records: Sequence[Mapping[str, Any]] | None = None,
) -> MatchResult:
    """Batch-dedupe ``records`` with ``spec``'s model.

    With ``model_json`` the given trained model is used as is; otherwise the curated
    priors, trained when ``options.train`` says so: on ``train_records`` when given
    (the systems' records before tier 1 joined any: what an email or domain agreement
    is worth can only be learnt there), else on ``records`` themselves. A model trained
    on other records gets its prior match rate re-estimated on ``records``.
    """
    opts = options or MatchOptions()
    with _gc_paused():
        return _match_records(records, spec, opts, model_json, train_records)


def model_is_weak(model_json: str) -> bool:
    """Whether the model was trained on too little: a training block had no record pair
    (its m probabilities are the priors), or it was never trained (too few records)."""
    meta = json.loads(model_json).get(MODEL_META) or {}
    return bool(meta.get("weak", False))


def _with_meta(model_json: str, **meta: Any) -> str:
    model = json.loads(model_json)
    model[MODEL_META] = {**(model.get(MODEL_META) or {}), **meta}
    return json.dumps(model, sort_keys=True)


def _match_records(
    records: Iterable[Mapping[str, Any]], spec: ModelSpec, opts: MatchOptions, model_json: str | None,
    train_records: Sequence[Mapping[str, Any]] | None = None,
) -> MatchResult:
    phases = _Phases(spec.name)
    session = _Session(spec)
    meta: dict[str, Any] = {}
    try:
        table, n = session.register(records, "records")
        phases.done("features", n)
        linker = session.linker([table], model_json or _settings(spec, n))
        if model_json is None:
            if train_records is not None and len(train_records) >= 2 and _should_train(opts.train, len(train_records)):
                trained_json, skipped = _train_apart(session, train_records, spec, opts.seed)
                linker = session.linker([table], trained_json)
                _reestimate_match_rate(linker, spec, n)
                meta = {"weak": bool(skipped), "trained_on": len(train_records), "skipped": skipped}
                phases.done("training", len(train_records))
            elif _should_train(opts.train, n):
                trained_json, skipped = _train(linker, spec, n, opts.seed, session.con, table.physical_name)
                linker = session.linker([table], trained_json)
                meta = {"weak": bool(skipped), "trained_on": n, "skipped": skipped}
                phases.done("training")
            else:
                meta = {"weak": False, "trained_on": 0, "skipped": []}
        predictions = linker.inference.predict(
            threshold_match_probability=opts.review_from, warning_mode="never"
        )
        phases.done("predict")
        trained = _model_json(linker)
        if meta:
            trained = _with_meta(trained, **meta)
        elif model_json is not None:
            trained = model_json
        scored_table = session.scored(predictions, trained, opts.review_from, opts.auto_link)
    finally:
        session.close()  # frees DuckDB's memory before the pairs become Python objects
    scored = _to_pairs(scored_table, trained)
    del scored_table
    phases.done("pairs", len(scored))
    result = _decide(scored, opts, trained, session.identity, n)
    phases.done("clustering", len(result.clusters))
    return result


class _Phases:
    """Debug log of how long each phase of a run took (``sync.dedupe`` at DEBUG)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = self.last = time.perf_counter()

    def done(self, phase: str, count: int | None = None) -> None:
        now = time.perf_counter()
        if log.isEnabledFor(logging.DEBUG):
            counted = f" ({count:,})" if count is not None else ""
            log.debug(
                "dedupe %s: %s%s %.2f s (%.2f s in all)",
                self.name, phase, counted, now - self.last, now - self.start,
            )  # fmt: skip
        self.last = now


def train_model(
    records: Iterable[Mapping[str, Any]], spec: ModelSpec, *, seed: int = SEED
) -> str:
    """Train ``spec``'s model on ``records`` (always) and return splink's model JSON."""
    with _gc_paused():
        session = _Session(spec)
        try:
            table, n = session.register(records, "records")
            linker = session.linker([table], _settings(spec, n))
            trained, skipped = _train(linker, spec, n, seed, session.con, table.physical_name)
            return _with_meta(trained, weak=bool(skipped), trained_on=n, skipped=skipped)
        finally:
            session.close()


class IncrementalMatcher:
    """Match a cycle's new records against stored ones with a trained model.

    The stored records are registered once (with their term frequencies); each
    ``match`` call scores new↔stored and new↔new pairs only, never stored↔stored.
    Call ``close()`` (or use it as a context manager) to free the DuckDB memory.
    """

    def __init__(
        self,
        model_json: str,
        existing_records: Iterable[Mapping[str, Any]],
        *,
        object_type: str = "contact",
        options: MatchOptions | None = None,
    ) -> None:
        self.spec = SPECS[object_type]
        self.options = options or MatchOptions()
        self.model_json = model_json
        self._session = _Session(self.spec)
        with _gc_paused():
            self._existing, _ = self._session.register(existing_records, "existing", keep_counts=True)
        self._linker = self._session.linker([self._existing], model_json)
        for column in _tf_columns(model_json):
            self._linker.table_management.compute_tf_table(column)
        self._batches = 0

    def match(self, new_records: Iterable[Mapping[str, Any]]) -> MatchResult:
        """Score new records against the stored ones and among themselves."""
        with _gc_paused():
            return self._match(new_records)

    def _match(self, new_records: Iterable[Mapping[str, Any]]) -> MatchResult:
        self._batches += 1
        new, n_new = self._session.register(
            new_records, f"new_{self._batches}", counts_from="existing"
        )
        opts = self.options
        candidates = self._candidates(new, self._batches)
        try:
            between = self._linker.inference.predict_between(
                new, candidates, threshold_match_probability=opts.review_from, warning_mode="never"
            )
            self._session.identity.clear()
            scored = self._session.pairs(between, self.model_json, opts.review_from, opts.auto_link)
            if n_new > 1:
                within = self._linker.inference.predict_within(
                    new, threshold_match_probability=opts.review_from, warning_mode="never"
                )
                scored += self._session.pairs(within, self.model_json, opts.review_from, opts.auto_link)
        finally:
            new.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
            candidates.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
        return _decide(scored, opts, self.model_json, self._session.identity, n_new)

    def _candidates(self, new: SplinkDataFrame, batch: int) -> SplinkDataFrame:
        """The stored records sharing a blocking key with a new one.

        splink rebuilds each side of ``predict_between`` on every call; narrowing the
        stored side first keeps a batch's cost independent of how much is stored. Term
        frequencies still come from all stored records (computed once, at start).
        """
        rules = [r["blocking_rule"] for r in json.loads(self.model_json)["blocking_rules_to_generate_predictions"]]
        matched = " UNION ".join(
            f"SELECT r.unique_id FROM {new.physical_name} AS l "
            f"JOIN {self._existing.physical_name} AS r ON {rule}"
            for rule in rules
        )
        name = f"candidates_{batch}"
        self._session.con.execute(
            f"CREATE TABLE {name} AS SELECT * FROM {self._existing.physical_name} "
            f"WHERE unique_id IN ({matched})"
        )
        return self._session.db_api.register(name, table_name=f"{name}_input")

    def close(self) -> None:
        """Free the scratch database."""
        self._session.close()

    def __enter__(self) -> IncrementalMatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- clustering


def cluster_pairs(
    links: Sequence[Pair], max_size: int = MAX_CLUSTER_SIZE,
    identity: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[list[list[str]], list[Pair], list[str]]:
    """Union the links, strongest first, refusing any union past ``max_size`` records.

    Returns (clusters of >= 2 ids, refused pairs, warnings). A refused pair is a chain
    of weak links about to fuse records that may be unrelated: it goes to review.

    ``identity`` (id → (group, name), e.g. a work mailbox's domain and user part): a
    cluster never holds two names of one group that are not a typo apart (two
    mailboxes at one company are two people). A link that would join two such
    clusters is refused, and so is every link of the record that bridged them: it
    fits two people evidently distinct, so which one it is stays for review.
    """
    if not links:
        return [], [], []
    with _gc_paused():
        if not identity:
            return _cluster_pairs(links, max_size)
        clusters, refused, warnings, bridges = _cluster_pairs_guarded(links, max_size, identity)
        if not bridges:
            return clusters, refused, warnings
        kept = [p for p in links if p.left not in bridges and p.right not in bridges]
        clusters, refused2, warnings2, _ = _cluster_pairs_guarded(kept, max_size, identity)
        ambiguous = [p for p in links if p.left in bridges or p.right in bridges]
        return clusters, [*ambiguous, *refused2], [*warnings2, *_bridge_warning(bridges, ambiguous)]


def _bridge_warning(bridges: set[str], ambiguous: Sequence[Pair]) -> list[str]:
    return [
        f"{len(bridges)} record(s) fit two people evidently distinct (two mailboxes at one "
        f"company): their {len(ambiguous)} link(s) sent to review"
    ]


def typo_apart(a: str, b: str) -> bool:
    """Whether two user parts (separators dropped) may be one mailbox mistyped: equal,
    or one swap, replacement, or letter dropped or doubled *inside* (a letter or digit
    added at the end is a naming scheme's way to tell two mailboxes apart:
    ``jsmith`` / ``jsmith2``, ``matthew`` / ``matthewr``)."""
    if a == b:
        return True
    if a.startswith(b) or b.startswith(a):
        return False
    return bool(DamerauLevenshtein.distance(a, b, score_cutoff=1) <= 1)


def _cluster_pairs_guarded(
    links: Sequence[Pair], max_size: int, identity: Mapping[str, tuple[str, str]]
) -> tuple[list[list[str]], list[Pair], list[str], set[str]]:
    """``_cluster_pairs`` with the ``identity`` guard; also returns the bridging records."""
    order = sorted(range(len(links)), key=lambda i: (-links[i].probability, links[i].left, links[i].right))
    parent: dict[str, str] = {}
    size: dict[str, int] = {}
    names: dict[str, dict[str, set[str]]] = {}  # root → group → names

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def names_of(x: str) -> dict[str, set[str]]:
        if x not in names:
            own = identity.get(x)
            names[x] = {own[0]: {own[1]}} if own else {}
        return names[x]

    refused: list[Pair] = []
    conflicts: list[Pair] = []
    for i in order:
        p = links[i]
        a, b = find(p.left), find(p.right)
        if a == b:
            continue
        sa, sb = size.get(a, 1), size.get(b, 1)
        if sa + sb > max_size:
            refused.append(p)
            continue
        na, nb = names_of(a), names_of(b)
        if any(not typo_apart(x, y) for g in na.keys() & nb.keys() for x in na[g] for y in nb[g]):
            conflicts.append(p)
            continue
        if sa < sb:
            a, b, na, nb = b, a, nb, na
        parent[b] = a
        size[a] = sa + sb
        for g, group in nb.items():
            na.setdefault(g, set()).update(group)
        names.pop(b, None)
    groups: dict[str, list[str]] = {}
    for node in list(parent):
        groups.setdefault(find(node), []).append(node)
    for root, members in groups.items():
        members.append(root)
    clusters = sorted((sorted(set(g)) for g in groups.values()), key=lambda c: c[0])
    # the bridge of a refused link: an end whose own identity is not the one in conflict
    bridges = {end for p in conflicts for end in (p.left, p.right) if end not in identity}
    warnings = []
    if refused:
        sample = ", ".join(f"{p.left}~{p.right}" for p in refused[:5])
        warnings.append(
            f"cluster size cap {max_size}: {len(refused)} link(s) refused and sent to "
            f"review (e.g. {sample})"
        )
    return clusters, [*refused, *conflicts], warnings, bridges


def _cluster_pairs(
    links: Sequence[Pair], max_size: int
) -> tuple[list[list[str]], list[Pair], list[str]]:
    # ids → ints and the strongest-first order, computed column-wise (a million links)
    lefts = pa.array([p.left for p in links], type=pa.string())
    rights = pa.array([p.right for p in links], type=pa.string())
    encoded = pc.dictionary_encode(pa.concat_arrays([lefts, rights]))
    codes = encoded.indices.to_pylist()  # lefts, then rights
    ids: list[str] = encoded.dictionary.to_pylist()
    order = pc.sort_indices(
        pa.table({"p": pa.array([p.probability for p in links], type=pa.float64()), "l": lefts, "r": rights}),
        sort_keys=[("p", "descending"), ("l", "ascending"), ("r", "ascending")],
    ).to_pylist()
    m = len(links)
    parent = list(range(len(ids)))
    size = [1] * len(ids)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    refused: list[Pair] = []
    for i in order:
        a, b = codes[i], codes[m + i]
        if parent[a] != a:  # (inlined: most ids are roots)
            a = find(a)
        if parent[b] != b:
            b = find(b)
        if a == b:
            continue
        sa, sb = size[a], size[b]
        if sa + sb > max_size:
            refused.append(links[i])
            continue
        if sa < sb:
            a, b = b, a
        parent[b] = a
        size[a] = sa + sb
    groups: dict[int, list[str]] = {}
    for node, name in enumerate(ids):
        root = parent[node]
        if parent[root] != root:
            root = find(node)
        if size[root] > 1:
            groups.setdefault(root, []).append(name)
    clusters = sorted((sorted(group) for group in groups.values()), key=lambda c: c[0])
    warnings = []
    if refused:
        sample = ", ".join(f"{p.left}~{p.right}" for p in refused[:5])
        warnings.append(
            f"cluster size cap {max_size}: {len(refused)} link(s) refused and sent to "
            f"review (e.g. {sample})"
        )
    return clusters, refused, warnings


def _decide(
    scored: list[Pair], opts: MatchOptions, model_json: str,
    identity: Mapping[str, tuple[str, str]] | None = None, records: int = 0,
) -> MatchResult:
    links = [p for p in scored if p.probability >= opts.auto_link]
    review = [p for p in scored if p.probability < opts.auto_link]
    clusters, refused, warnings = cluster_pairs(links, opts.max_cluster_size, identity)
    for warning in warnings:
        log.warning("dedupe: %s", warning)
    refused_keys = {(p.left, p.right) for p in refused}
    kept = [p for p in links if (p.left, p.right) not in refused_keys]
    review = _one_question_each(sorted([*review, *refused], key=lambda p: -p.probability), clusters)
    if opts.max_review_share is not None:
        cap = max(int(opts.max_review_share * records), MIN_REVIEW_CAP)
        if len(review) > cap:
            log.info(
                "dedupe: %d doubtful pair(s) under %.4f left out of the review queue (at most %.2f%% of %d "
                "records): kept apart", len(review) - cap, review[cap].probability,
                100 * opts.max_review_share, records,
            )  # fmt: skip
            review = review[:cap]
    return MatchResult(kept, review, clusters, warnings, model_json)


def _one_question_each(review: list[Pair], clusters: list[list[str]]) -> list[Pair]:
    """The review pairs that ask something: none inside one cluster (already linked),
    and one per two clusters (the strongest; ``review`` is strongest first): whether
    two groups of records are one entity is one question, however many pairs ask it."""
    group = {rid: i for i, cluster in enumerate(clusters) for rid in cluster}
    seen: set[tuple[Any, Any]] = set()
    out = []
    for p in review:
        a, b = group.get(p.left, p.left), group.get(p.right, p.right)
        if a == b:
            continue
        key = (a, b) if str(a) <= str(b) else (b, a)
        if key in seen:
            continue
        seen.add(key)
        out.append(p)
    return out


# --------------------------------------------------------------------------- splink plumbing


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a run allocates millions of acyclic objects
    (records, pairs): its full passes cost a third of the run. Restored on exit."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _python_feature_table(
    con: duckdb.DuckDBPyConnection, records: Sequence[Mapping[str, Any]], spec: ModelSpec, name: str
) -> None:
    """``spec.features`` record by record into table ``name`` (for specs without a
    column-wise builder), with ``rn`` like ``ModelSpec.feature_table``."""
    names = [c.name for c in spec.columns]
    data: dict[str, list[Any]] = {column: [] for column in names}
    for record in records:
        row = spec.features(record)
        for column in names:
            data[column].append(row.get(column))
    fields = [
        pa.field(c.name, pa.list_(pa.string()) if c.kind == "list<string>" else pa.string())
        for c in spec.columns
    ]
    table = pa.table(
        {"rn": pa.array(range(len(records)), type=pa.int64()), **data},
        schema=pa.schema([pa.field("rn", pa.int64()), *fields]),
    )
    con.register(f"{name}_arrow", table)
    try:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow ORDER BY rn")
    finally:
        con.unregister(f"{name}_arrow")
    duplicate = con.execute(
        f"SELECT unique_id FROM {name} GROUP BY unique_id HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if duplicate is not None:
        con.execute(f"DROP TABLE {name}")
        raise ValueError(f"duplicate record id {duplicate[0]!r}")


def _prior_match_rate(spec: ModelSpec, n: int) -> float:
    """λ for an untrained model: expected duplicate pairs over all possible pairs."""
    if n < 2:
        return 0.5
    return min(0.5, 2 * spec.prior_pairs_per_record / (n - 1))


def _settings(spec: ModelSpec, n: int) -> SettingsCreator:
    comparisons: list[Any] = list(spec.comparisons(n >= MIN_TRAIN_RECORDS))
    rules: list[Any] = list(spec.blocking_rules)
    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        probability_two_random_records_match=_prior_match_rate(spec, n),
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
        max_iterations=20,
    )


def _should_train(train: Train, n: int) -> bool:
    return train == "always" or (train == "auto" and n >= MIN_TRAIN_RECORDS)


def _train_apart(
    session: _Session, train_records: Sequence[Mapping[str, Any]], spec: ModelSpec, seed: int
) -> tuple[str, list[str]]:
    """``_train`` on other records than the ones to match (in the same scratch database)."""
    table, n = session.register(train_records, "training")
    try:
        return _train(session.linker([table], _settings(spec, n)), spec, n, seed, session.con, table.physical_name)
    finally:
        table.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)


def _reestimate_match_rate(linker: Linker, spec: ModelSpec, n: int) -> None:
    """λ for the records to match (fewer duplicates than the training records, which tier
    1 had not joined yet); the training's λ stays when it cannot be estimated here."""
    settings = linker._settings_obj
    before = settings._probability_two_random_records_match
    try:
        linker.training.estimate_probability_two_random_records_match(
            list(spec.deterministic_rules), recall=spec.deterministic_recall
        )
    except Exception as exc:  # no pair shares a deterministic key
        log.info("match model: keeping the training's match rate (%s)", exc)
    lam = settings._probability_two_random_records_match
    if not 0 < lam < 1:
        settings._probability_two_random_records_match = before if 0 < before < 1 else _prior_match_rate(spec, n)


def _train(
    linker: Linker, spec: ModelSpec, n: int, seed: int, con: Any = None, table: str | None = None
) -> tuple[str, list[str]]:
    """u by random sampling, λ from deterministic rules, m by EM; returns the model JSON
    and the training rules whose block had no record pair (nothing learnt from them).

    The u sample is a random set of pairs, some of which are matches: at λ·m they
    inflate u for the rare agreement levels (the bias shrinks as the data grows, so
    the same model would link differently at different sizes). ``_debias_u`` removes it.
    """
    possible = n * (n - 1) / 2
    sampled = float(min(U_SAMPLE_PAIRS, max(possible, 1.0)))
    linker.training.estimate_u_using_random_sampling(max_pairs=sampled + 0.5, seed=seed)
    settings = linker._settings_obj  # splink keeps λ here (training.py sets it the same way)
    prior = settings._probability_two_random_records_match
    try:
        linker.training.estimate_probability_two_random_records_match(
            list(spec.deterministic_rules), recall=spec.deterministic_recall
        )
    except Exception as exc:  # e.g. no record pair shares a deterministic key
        log.warning("match model: keeping the prior match rate (%s)", exc)
    lam = settings._probability_two_random_records_match
    if not 0 < lam < 1:
        # no pair shares a deterministic key (tier 1 already joined them all): λ = 0 would
        # make every prediction log(0); keep the prior
        log.warning("match model: estimated match rate %s unusable, keeping the prior %s", lam, prior)
        settings._probability_two_random_records_match = prior
    skipped: list[str] = []
    for rule in spec.training_rules:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule,
                estimate_without_term_frequencies=True,
                # name blocks grow as n²: sample them down on large inputs
                max_pairs=EM_MAX_PAIRS if n > EM_SAMPLE_FROM else None,
            )
        except EMTrainingException as exc:
            # A training block with no record pairs (tier-1 keys already joined every
            # record sharing that key): nothing to learn from it; keep the priors.
            log.warning("match model: training block %r skipped (%s)", rule, exc)
            skipped.append(rule)
    model_json = _debias_u(_model_json(linker), n, dict(spec.min_bayes_factor), spec.min_odds)
    if spec.estimate_u is not None and con is not None and table is not None:
        model_json = _set_u(model_json, spec.estimate_u(con, table, n))
    return model_json, skipped


def _set_u(model_json: str, us: Mapping[tuple[str, str], float]) -> str:
    """The given levels' u ((comparison, label) → u), estimated outside the sample."""
    model = json.loads(model_json)
    for comparison in model["comparisons"]:
        for lv in comparison["comparison_levels"]:
            u = us.get((comparison["output_column_name"], lv.get("label_for_charts")))
            if u is not None:
                lv["u_probability"] = float(u)
                log.debug("match model: %s / %s: u = %.3g", comparison["output_column_name"],
                          lv.get("label_for_charts"), u)
    return json.dumps(model, sort_keys=True)


def _debias_u(
    model_json: str, n: int, min_bf: Mapping[str, float] | None = None,
    min_odds: Sequence[tuple[str, str, float]] = (),
) -> str:
    """u ← max(u - λ·m, floor) per agreement level; the else level takes up the rest;
    then m floored (``_floor_m``).

    ``floor`` is for a level the u sample never saw among non-matches (exact email,
    phone, domain). The sample cannot resolve it, so it is set by size: at most
    ``UNSEEN_COLLISIONS_PER_RECORD`` non-matching pairs per record agree on it. Like λ
    it falls as 1/n, so the link decision does not drift with the data size.
    Levels marked fixed keep their m and u. ``min_bf`` (comparison → least Bayes
    factor) then raises m where a level weighs more against than real data warrants;
    ``min_odds`` (comparison, level label, odds) raises a level's m to odds / λ · u.
    """
    model = json.loads(model_json)
    lam = float(model["probability_two_random_records_match"])
    floor = 2 * UNSEEN_COLLISIONS_PER_RECORD / max(n - 1, 1)
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        agreeing = [lv for lv in levels if lv["sql_condition"].strip().upper() != "ELSE"]
        for lv in agreeing:
            m, u = lv.get("m_probability"), lv.get("u_probability")
            if m is not None and u is not None and not lv.get("fix_u_probability"):
                lv["u_probability"] = max(float(u) - lam * float(m), min(float(u), floor))
        rest = 1.0 - sum(float(lv.get("u_probability") or 0.0) for lv in agreeing)
        for lv in levels:
            if lv not in agreeing:
                lv["u_probability"] = max(rest, floor)
        _floor_m([lv for lv in levels if not lv.get("fix_m_probability")])
        least = (min_bf or {}).get(comparison["output_column_name"])
        if least is not None:
            for lv in levels:
                m, u = lv.get("m_probability"), lv.get("u_probability")
                if m is not None and u is not None and not lv.get("fix_m_probability"):
                    lv["m_probability"] = max(float(m), least * float(u))
        for name, label, odds in min_odds:
            if name != comparison["output_column_name"]:
                continue
            for lv in levels:
                m, u = lv.get("m_probability"), lv.get("u_probability")
                if lv.get("label_for_charts") == label and m is not None and u is not None and 0 < lam < 1:
                    lv["m_probability"] = max(float(m), odds * (1 - lam) / lam * float(u))
    return json.dumps(model, sort_keys=True)


def _floor_m(levels: list[dict[str, Any]]) -> None:
    """m ← at least ``MIN_M_PROBABILITY`` per level (the most likely level gives way).

    EM gives m = 0 to a level no matching pair in the training data shows (no seed
    data has a company at two addresses): such a level would veto any link, however
    strong the rest of the evidence. Real data has moves, branches and typos.
    """
    if any(lv.get("m_probability") is None for lv in levels):
        return
    ms = [float(lv["m_probability"]) for lv in levels]
    floored = [max(m, MIN_M_PROBABILITY) for m in ms]
    # the mass added comes from the most likely level, so the rest keep their weights
    top = max(range(len(ms)), key=ms.__getitem__)
    floored[top] -= sum(floored) - sum(ms)
    for lv, m in zip(levels, floored, strict=True):
        lv["m_probability"] = m


def _model_json(linker: Linker) -> str:
    model: dict[str, Any] = linker.misc.save_model_to_json()
    return json.dumps(model, sort_keys=True)


def _tf_columns(model_json: str) -> list[str]:
    model = json.loads(model_json)
    columns = {
        level["tf_adjustment_column"]
        for comparison in model["comparisons"]
        for level in comparison["comparison_levels"]
        if level.get("tf_adjustment_column")
    }
    return sorted(columns)


def _evidence_labels(model_json: str) -> list[tuple[str, dict[int, str]]]:
    """Per comparison: its output column and gamma value → level label."""
    model = json.loads(model_json)
    out = []
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        labels: dict[int, str] = {}
        value = sum(1 for lv in levels if not lv.get("is_null_level")) - 1
        for lv in levels:
            label = str(lv.get("label_for_charts") or lv["sql_condition"])
            if lv.get("is_null_level"):
                labels[-1] = label
            else:
                labels[value] = label
                value -= 1
        out.append((comparison["output_column_name"], labels))
    return out


def _to_pairs(table: pa.Table, model_json: str) -> list[Pair]:
    """``Session.scored``'s table as Pairs, a batch at a time (a million pairs).

    Evidence labels are worked out once per combination of comparison levels.
    """
    labels = _evidence_labels(model_json)
    evidence: dict[tuple[Any, ...], dict[str, str]] = {}
    out = []
    for batch in table.to_batches(max_chunksize=100_000):
        columns = [column.to_pylist() for column in batch.columns]
        for left, right, prob, *levels in zip(*columns, strict=True):
            key = tuple(levels)
            shared = evidence.get(key)
            if shared is None:
                shared = evidence[key] = {
                    name: table_.get(int(g), str(g)) for (name, table_), g in zip(labels, key, strict=True)
                }
            out.append(Pair(left, right, prob, dict(shared)))  # a copy: callers may edit it
    return out


class _Session:
    """One in-memory DuckDB connection and its splink API, closed after use."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.con = duckdb.connect(":memory:")
        self.db_api = DuckDBAPI(connection=self.con)
        # record id → (group, name) of ``spec.identity`` (see ``cluster_pairs``)
        self.identity: dict[str, tuple[str, str]] = {}

    def register(
        self,
        records: Iterable[Mapping[str, Any]],
        name: str,
        *,
        keep_counts: bool = False,
        counts_from: str | None = None,
    ) -> tuple[SplinkDataFrame, int]:
        """The records' features as splink input table ``name``; returns it and its size.

        ``spec.rare_only`` values more common than their cap are blanked. ``keep_counts``
        keeps this table's value counts (as ``<name>_counts_<column>``) so a later
        ``counts_from=name`` adds them to its own.
        """
        rows = records if isinstance(records, Sequence) else list(records)
        raw = f"{name}_features"
        if self.spec.feature_table is not None:
            self.spec.feature_table(self.con, rows, raw)
        else:
            _python_feature_table(self.con, rows, self.spec, raw)
        n = len(rows)
        del rows
        exprs = {c.name: f"t.{c.name}" for c in self.spec.columns}
        joins = []
        for column, cap in self.spec.rare_only:
            counts = f"{name}_counts_{column}"
            self.con.execute(
                f"CREATE OR REPLACE TABLE {counts} AS SELECT {column} AS value, count(*) AS n "
                f"FROM {raw} WHERE {column} IS NOT NULL GROUP BY ALL"
            )
            joins.append(f"LEFT JOIN {counts} ON {counts}.value = t.{column}")
            total = f"{counts}.n"
            if counts_from is not None:
                before = f"{counts_from}_counts_{column}"
                joins.append(f"LEFT JOIN {before} ON {before}.value = t.{column}")
                total += f" + coalesce({before}.n, 0)"
            exprs[column] = f"CASE WHEN {total} <= {int(cap)} THEN t.{column} END"
        select = ", ".join(f"{expr} AS {column}" for column, expr in exprs.items())
        self.con.execute(
            f"CREATE TABLE {name} AS SELECT {select} FROM {raw} AS t {' '.join(joins)} ORDER BY t.rn"
        )
        self.con.execute(f"DROP TABLE {raw}")
        if not keep_counts:
            for column, _ in self.spec.rare_only:
                self.con.execute(f"DROP TABLE {name}_counts_{column}")
        return self.db_api.register(name, table_name=f"{name}_input"), n

    def linker(self, tables: list[SplinkDataFrame], settings: SettingsCreator | str) -> Linker:
        source: SettingsCreator | dict[str, Any] = (
            json.loads(settings) if isinstance(settings, str) else settings
        )
        if isinstance(source, dict):
            source.pop(MODEL_META, None)  # ours, not splink's
        return Linker(tables if len(tables) > 1 else tables[0], source, log_level=None)

    def pairs(self, predictions: SplinkDataFrame, model_json: str, floor: float, link_from: float = 1.0) -> list[Pair]:
        """The scored pairs at or above ``floor`` (``scored`` then ``_to_pairs``)."""
        return _to_pairs(self.scored(predictions, model_json, floor, link_from), model_json)

    def scored(self, predictions: SplinkDataFrame, model_json: str, floor: float, link_from: float = 1.0) -> pa.Table:
        """The scored pairs at or above ``floor`` as Arrow columns l, r, p, gammas …
        (``l < r``); the predictions table is dropped. The ``spec.identity`` of every
        record in a pair at or above ``link_from`` is added to ``self.identity``."""
        gammas = ", ".join(f'"gamma_{name}"' for name, _ in _evidence_labels(model_json))
        # ids are compared as UTF-8 bytes: the same order as Python's str comparison
        sql = (
            f"SELECT least(unique_id_l::VARCHAR, unique_id_r::VARCHAR) AS l, "
            f"greatest(unique_id_l::VARCHAR, unique_id_r::VARCHAR) AS r, "
            f"match_probability::DOUBLE AS p, {gammas} "
            f"FROM {predictions.physical_name} "
            f"WHERE match_probability >= {float(floor)!r} AND NOT isnan(match_probability)"
        )
        table = self.con.sql(sql).to_arrow_table()
        if self.spec.identity is not None:
            group, name = self.spec.identity
            for side in ("l", "r"):
                for rid, g, nm in self.con.execute(
                    f"SELECT unique_id_{side}::VARCHAR, {group}_{side}, {name}_{side} "
                    f"FROM {predictions.physical_name} WHERE match_probability >= {float(link_from)!r} "
                    f"AND {group}_{side} IS NOT NULL AND {name}_{side} IS NOT NULL"
                ).fetchall():
                    self.identity[rid] = (g, nm)
        predictions.drop_table_from_database_and_remove_from_cache()
        return table

    def close(self) -> None:
        self.con.close()
