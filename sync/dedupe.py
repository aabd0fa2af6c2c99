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

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import duckdb
import pyarrow as pa
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
# A comparison level never seen among sampled non-matches is taken to occur in at most
# this many non-matching pairs per record (see ``_debias_u``).
UNSEEN_COLLISIONS_PER_RECORD = 1e-3

Train = Literal["auto", "always", "never"]


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

    def __post_init__(self) -> None:
        if not 0 < self.review_from <= self.auto_link <= 1:
            raise ValueError("need 0 < review_from <= auto_link <= 1")
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
) -> MatchResult:
    """Batch-dedupe ``records`` with ``spec``'s model.

    With ``model_json`` the given trained model is used as is; otherwise the curated
    priors, trained on these records when ``options.train`` says so.
    """
    opts = options or MatchOptions()
    rows = _feature_rows(records, spec)
    rows.blank_common(spec)
    n = len(rows)
    session = _Session(spec)
    try:
        table = session.register(rows, "records")
        del rows  # DuckDB holds its own copy
        linker = session.linker([table], model_json or _settings(spec, n))
        if model_json is None and _should_train(opts.train, n):
            linker = session.linker([table], _train(linker, spec, n, opts.seed))
        predictions = linker.inference.predict(
            threshold_match_probability=opts.review_from, warning_mode="never"
        )
        trained = _model_json(linker)
        scored = session.pairs(predictions, trained, opts.review_from)
    finally:
        session.close()
    return _decide(scored, opts, trained)


def train_model(
    records: Iterable[Mapping[str, Any]], spec: ModelSpec, *, seed: int = SEED
) -> str:
    """Train ``spec``'s model on ``records`` (always) and return splink's model JSON."""
    rows = _feature_rows(records, spec)
    rows.blank_common(spec)
    session = _Session(spec)
    try:
        table = session.register(rows, "records")
        linker = session.linker([table], _settings(spec, len(rows)))
        return _train(linker, spec, len(rows), seed)
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
        rows = _feature_rows(existing_records, self.spec)
        self._counts = rows.counts
        rows.blank_common(self.spec)
        self._existing = self._session.register(rows, "existing")
        self._linker = self._session.linker([self._existing], model_json)
        for column in _tf_columns(model_json):
            self._linker.table_management.compute_tf_table(column)
        self._batches = 0

    def match(self, new_records: Iterable[Mapping[str, Any]]) -> MatchResult:
        """Score new records against the stored ones and among themselves."""
        rows = _feature_rows(new_records, self.spec)
        rows.blank_common(self.spec, self._counts)
        self._batches += 1
        new = self._session.register(rows, f"new_{self._batches}")
        opts = self.options
        candidates = self._candidates(new, self._batches)
        try:
            between = self._linker.inference.predict_between(
                new, candidates, threshold_match_probability=opts.review_from, warning_mode="never"
            )
            scored = self._session.pairs(between, self.model_json, opts.review_from)
            if len(rows) > 1:
                within = self._linker.inference.predict_within(
                    new, threshold_match_probability=opts.review_from, warning_mode="never"
                )
                scored += self._session.pairs(within, self.model_json, opts.review_from)
        finally:
            new.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
            candidates.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
        return _decide(scored, opts, self.model_json)

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
    links: Sequence[Pair], max_size: int = MAX_CLUSTER_SIZE
) -> tuple[list[list[str]], list[Pair], list[str]]:
    """Union the links, strongest first, refusing any union past ``max_size`` records.

    Returns (clusters of >= 2 ids, refused pairs, warnings). A refused pair is a chain
    of weak links about to fuse records that may be unrelated: it goes to review.
    """
    parent: dict[str, str] = {}
    size: dict[str, int] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    refused: list[Pair] = []
    for pair in sorted(links, key=lambda p: (-p.probability, p.left, p.right)):
        a, b = find(pair.left), find(pair.right)
        if a == b:
            continue
        sa, sb = size.get(a, 1), size.get(b, 1)
        if sa + sb > max_size:
            refused.append(pair)
            continue
        if sa < sb:
            a, b = b, a
        parent[b] = a
        size[a] = sa + sb
    groups: dict[str, list[str]] = {}
    for node in parent:
        groups.setdefault(find(node), []).append(node)
    for root in list(groups):
        groups[root].append(root)
    clusters = sorted((sorted(set(ids)) for ids in groups.values()), key=lambda c: c[0])
    warnings = []
    if refused:
        sample = ", ".join(f"{p.left}~{p.right}" for p in refused[:5])
        warnings.append(
            f"cluster size cap {max_size}: {len(refused)} link(s) refused and sent to "
            f"review (e.g. {sample})"
        )
    return clusters, refused, warnings


def _decide(scored: list[Pair], opts: MatchOptions, model_json: str) -> MatchResult:
    links = [p for p in scored if p.probability >= opts.auto_link]
    review = [p for p in scored if p.probability < opts.auto_link]
    clusters, refused, warnings = cluster_pairs(links, opts.max_cluster_size)
    for warning in warnings:
        log.warning("dedupe: %s", warning)
    refused_keys = {(p.left, p.right) for p in refused}
    kept = [p for p in links if (p.left, p.right) not in refused_keys]
    review = sorted([*review, *refused], key=lambda p: -p.probability)
    return MatchResult(kept, review, clusters, warnings, model_json)


# --------------------------------------------------------------------------- splink plumbing


class _Columns:
    """Feature columns built record by record (no per-record dicts kept: 1M records)."""

    def __init__(self, records: Iterable[Mapping[str, Any]], spec: ModelSpec) -> None:
        names = [c.name for c in spec.columns]
        self.data: dict[str, list[Any]] = {name: [] for name in names}
        seen: set[str] = set()
        for record in records:
            row = spec.features(record)
            uid = row["unique_id"]
            if uid in seen:
                raise ValueError(f"duplicate record id {uid!r}")
            seen.add(uid)
            for name in names:
                self.data[name].append(row.get(name))
        self.counts: dict[str, Counter[str]] = {}
        for column, _ in spec.rare_only:
            self.counts[column] = Counter(v for v in self.data[column] if v is not None)

    def blank_common(self, spec: ModelSpec, extra: Mapping[str, Counter[str]] | None = None) -> None:
        """Blank ``spec.rare_only`` values more common than their cap (``extra`` adds counts)."""
        for column, cap in spec.rare_only:
            counts = self.counts[column] + (extra or {}).get(column, Counter())
            values = self.data[column]
            self.data[column] = [v if v is not None and counts[v] <= cap else None for v in values]

    def __len__(self) -> int:
        return len(self.data["unique_id"])


def _feature_rows(records: Iterable[Mapping[str, Any]], spec: ModelSpec) -> _Columns:
    return _Columns(records, spec)


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


def _train(linker: Linker, spec: ModelSpec, n: int, seed: int) -> str:
    """u by random sampling, λ from deterministic rules, m by EM; returns the model JSON.

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
    return _debias_u(_model_json(linker), n)


def _debias_u(model_json: str, n: int) -> str:
    """u ← max(u - λ·m, floor) per agreement level; the else level takes up the rest.

    ``floor`` is for a level the u sample never saw among non-matches (exact email,
    phone, domain). The sample cannot resolve it, so it is set by size: at most
    ``UNSEEN_COLLISIONS_PER_RECORD`` non-matching pairs per record agree on it. Like λ
    it falls as 1/n, so the link decision does not drift with the data size.
    """
    model = json.loads(model_json)
    lam = float(model["probability_two_random_records_match"])
    floor = 2 * UNSEEN_COLLISIONS_PER_RECORD / max(n - 1, 1)
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        agreeing = [lv for lv in levels if lv["sql_condition"].strip().upper() != "ELSE"]
        for lv in agreeing:
            m, u = lv.get("m_probability"), lv.get("u_probability")
            if m is not None and u is not None:
                lv["u_probability"] = max(float(u) - lam * float(m), min(float(u), floor))
        rest = 1.0 - sum(float(lv.get("u_probability") or 0.0) for lv in agreeing)
        for lv in levels:
            if lv not in agreeing:
                lv["u_probability"] = max(rest, floor)
    return json.dumps(model, sort_keys=True)


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


class _Session:
    """One in-memory DuckDB connection and its splink API, closed after use."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.con = duckdb.connect(":memory:")
        self.db_api = DuckDBAPI(connection=self.con)
        self._schema = pa.schema(
            [
                pa.field(c.name, pa.list_(pa.string()) if c.kind == "list<string>" else pa.string())
                for c in spec.columns
            ]
        )

    def register(self, rows: _Columns, name: str) -> SplinkDataFrame:
        table = pa.table(rows.data, schema=self._schema)
        return self.db_api.register(table, table_name=name)

    def linker(self, tables: list[SplinkDataFrame], settings: SettingsCreator | str) -> Linker:
        source: SettingsCreator | dict[str, Any] = (
            json.loads(settings) if isinstance(settings, str) else settings
        )
        return Linker(tables if len(tables) > 1 else tables[0], source, log_level=None)

    def pairs(self, predictions: SplinkDataFrame, model_json: str, floor: float) -> list[Pair]:
        labels = _evidence_labels(model_json)
        gammas = ", ".join(f'"gamma_{name}"' for name, _ in labels)
        sql = (
            f"SELECT unique_id_l, unique_id_r, match_probability, {gammas} "
            f"FROM {predictions.physical_name} WHERE match_probability >= ?"
        )
        out = []
        for row in self.con.execute(sql, [floor]).fetchall():
            left, right, prob = str(row[0]), str(row[1]), float(row[2])
            if math.isnan(prob):
                continue
            evidence = {
                name: table.get(int(g), str(g)) for (name, table), g in zip(labels, row[3:], strict=True)
            }
            if right < left:
                left, right = right, left
            out.append(Pair(left, right, prob, evidence))
        predictions.drop_table_from_database_and_remove_from_cache()
        return out

    def close(self) -> None:
        self.con.close()
