"""Tier-2 matching inside revsync: run the matcher (``sync.dedupe``) over the
canonical store and act on what it finds.

- Pairs at or above the auto-link threshold are linked (policy ``link``): the
  entities are folded into one canonical id, the remote records untouched until the
  next plan writes the agreed values; every link is a merge-ledger entry with
  before-images, so ``revsync dedupe undo ID`` restores the entities.
- Pairs in the doubtful band go to the review queue (``revsync dedupe review``).
- A pair an admin rejected (or a link that was undone) is never linked again.
- Policy ``merge`` (``[policies.contact] merges = "merge"``): the link is recorded as
  a merge, and the next plan also calls the merge API of each system that has one
  (HubSpot) for the records the link put under one entity (``Engine._plan_merge``).
  Salesforce stays on ``link``: its merge is SOAP-only and cannot be undone.
- A merge made *in* a system (a user merging two HubSpot contacts, Salesforce
  merging accounts or converting a Lead) links the two entities here too
  (``follow_remote_merges``), so revsync never re-creates the merged-away record.

Inside each sync cycle, tier 2 runs after the cycle's entities are reconciled (so it
sees their names, companies, phones and addresses), then the survivors are planned
again. Batch mode scores every live entity; incremental mode scores only the
entities created since the last match run against the stored ones with the kept
model. The model trains on the systems' records (before tier 1 joined those sharing
an email or a domain, so it learns what such an agreement is worth) and is kept in
the store; it is retrained, and every entity scored again, when it is missing, was
trained on too little (a training block without pairs), the store has grown
``RETRAIN_GROWTH`` times since, or on ``revsync dedupe --retrain``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sync import store as st
from sync.match_report import DedupeReport

log = logging.getLogger(__name__)

MATCHED_OBJECTS = ("account", "contact", "opportunity")
#: the kept model is retrained (and every entity scored again) once the store holds
#: this many times the entities it was trained for
RETRAIN_GROWTH = 2.0
#: … and a model trained on too little once the store has grown by this factor
WEAK_RETRAIN_GROWTH = 1.1


#: thresholds per object, calibrated on the bench's score bands (bench/README.md):
#: above 0.99 both objects' pairs are links at precision 1.0 on the sandbox data; in
#: [0.8, 0.9) account pairs are mostly distinct companies (precision .16 on the
#: real-noise data, 1.4 % of records), contact pairs mostly true (.85-.87): doubtful
MATCH_THRESHOLDS: dict[str, dict[str, float]] = {
    "account": {"auto_link": 0.99, "review_from": 0.90, "max_review_share": 0.01},
    "contact": {"auto_link": 0.99, "review_from": 0.80, "max_review_share": 0.01},
}


def _options(cfg: Mapping[str, Any], object_type: str | None = None) -> Any:
    """The match options of one object: ``[dedupe.<object>]``, else ``[dedupe]``,
    else ``MATCH_THRESHOLDS``."""
    from sync.dedupe import MatchOptions

    own = cfg.get(object_type) if object_type else None
    own = own if isinstance(own, Mapping) else {}
    default = MATCH_THRESHOLDS.get(object_type or "", {"auto_link": 0.99, "review_from": 0.80, "max_review_share": 0.01})

    def pick(key: str) -> float:
        return float(own.get(key, cfg.get(key, default[key])))

    auto_link = pick("auto_link")
    return MatchOptions(
        auto_link=auto_link,
        review_from=min(pick("review_from"), auto_link),
        max_cluster_size=int(cfg.get("max_cluster_size", 12)),
        max_review_share=pick("max_review_share"),
    )


class Deduper:
    """Applies the matcher's decisions to the store."""

    def __init__(self, store: st.Store, config: Mapping[str, Any] | None = None, *,
                 now: Callable[[], datetime], run_id: int | None = None,
                 policies: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.store, self.cfg, self.now, self.run_id = store, dict(config or {}), now, run_id
        self.policies = policies or {}

    def _policy(self, object_type: str) -> str:
        """What a link records: ``merge`` when the object's policy says so, else ``link``."""
        return "merge" if (self.policies.get(object_type) or {}).get("merges") == "merge" else "link"

    def follow_remote_merges(self, object_type: str) -> int:
        """Link the entities of records a system merged (see ``st.remote_merge_pairs``);
        a pair an admin rejected or undid stays apart. Returns the links made."""
        now = self.now()
        made = 0
        with self.store.session() as s:
            decided = st.decided_pairs(s, object_type)
            for item in st.remote_merge_pairs(s, object_type):
                a, b = item["survivor"], item["merged"]
                if decided.get((min(a, b), max(a, b))) == "rejected":
                    continue
                evidence = {f"{min(a, b)}~{max(a, b)}": {
                    "merged_in": item["system"],
                    "record": f"{item['native_type']}/{item['remote_id']}",
                    "into": f"{item['into_native_type']}/{item['into_remote_id']}",
                }}
                # the system already merged them: nothing left to merge remotely
                merge_id = st.link_entities(s, object_type, [a, b], evidence=evidence, run_id=self.run_id,
                                            now=now, survivor_id=a, policy="link")
                if merge_id is not None:
                    made += 1
                    log.info("%s %s merged into %s in %s: linked (merge %s)", object_type, b, a,
                             item["system"], merge_id)
                s.flush()
        return made

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.get("enabled", True))

    def retrain_reason(self, object_type: str) -> str | None:
        """Why the kept model must be retrained before use (None: it can be used)."""
        from sync.dedupe import model_is_weak

        with self.store.session() as s:
            model = st.get_match_model(s, object_type)
            live = st.entity_counts(s).get(object_type, 0)
        if model is None:
            return "no model yet"
        if model_is_weak(model.model_json) and live >= WEAK_RETRAIN_GROWTH * model.records + 1:
            # not every cycle: a store with one system has no cross-system pairs to learn from
            return "the model was trained on too little (a training block without record pairs)"
        if live >= RETRAIN_GROWTH * max(model.records, 1) and live >= 2 * RETRAIN_GROWTH:
            return f"the store grew from {model.records} to {live} {object_type}s since training"
        return None

    def run_batch(self, object_type: str, *, dry_run: bool = False, retrain: bool = False) -> DedupeReport:
        """Score every live entity of ``object_type``; link and queue. The kept model is
        used unless ``retrain`` or ``retrain_reason`` says otherwise; a newly trained
        model is kept (not on a dry run)."""
        if object_type == "opportunity":  # deals: a calibrated scorer per account
            from sync import dedupe_opportunity

            return dedupe_opportunity.run(self, dry_run=dry_run)
        from sync.dedupe import match_records
        from sync.dedupe_models import SPECS

        report = DedupeReport(object_type, "batch", self._policy(object_type))
        started = self.now()
        reason = "asked for (--retrain)" if retrain else self.retrain_reason(object_type)
        with self.store.session() as s:
            records = st.dedupe_records(s, object_type)
            model = st.get_match_model(s, object_type)
            train = st.match_training_records(s, object_type) if reason is not None else None
        report.records = len(records)
        if len(records) < 2:
            return report
        model_json = model.model_json if reason is None and model is not None else None
        result = match_records(records, SPECS[object_type], options=_options(self.cfg, object_type), model_json=model_json,
                               train_records=train)
        report.trained, report.retrain_reason = model_json is None, reason
        if not dry_run:
            with self.store.session() as s:
                if model_json is None:
                    st.save_match_model(s, object_type, result.model_json, len(records), self.now(), started)
                else:
                    st.set_matched_until(s, object_type, started)
        self._apply(object_type, result, report, dry_run=dry_run)
        return report

    def run_pending(self, object_type: str) -> DedupeReport:
        """Match what has not been matched yet: everything (batch) when the kept model
        must be (re)trained (``retrain_reason``), else the entities created since the
        last match run — so a run that died before matching leaves nothing unmatched."""
        started = self.now()
        with self.store.session() as s:
            model = st.get_match_model(s, object_type)
            since = model.matched_until if model is not None else None
            new_ids = st.entity_ids_created_since(s, object_type, since) if since is not None else None
        if new_ids is None:
            return self.run_batch(object_type)
        if not new_ids:
            return DedupeReport(object_type, "incremental", self._policy(object_type))
        if self.retrain_reason(object_type) is not None:
            return self.run_batch(object_type)  # retrained, and every entity scored again
        report = self.run_incremental(object_type, new_ids)
        with self.store.session() as s:
            st.set_matched_until(s, object_type, started)
        return report

    def run_incremental(self, object_type: str, new_ids: Sequence[str]) -> DedupeReport:
        """Score the entities ``new_ids`` against the stored ones."""
        if object_type == "opportunity":  # deals: a calibrated scorer per account
            from sync import dedupe_opportunity

            return dedupe_opportunity.run(self, new_ids=new_ids)
        from sync.dedupe import IncrementalMatcher

        report = DedupeReport(object_type, "incremental", self._policy(object_type))
        if not new_ids:
            return report
        with self.store.session() as s:
            model = st.get_match_model(s, object_type)
            new = st.dedupe_records(s, object_type, new_ids)
            if model is None:
                stored_count = None
            else:
                new_set = set(new_ids)
                stored = [r for r in st.dedupe_records(s, object_type) if r["id"] not in new_set]
                stored_count = len(stored)
        report.records = len(new)
        if model is None or not stored_count:
            # nothing trained yet (first sync) or nothing stored: one batch run does both
            return self.run_batch(object_type)
        with IncrementalMatcher(model.model_json, stored, object_type=object_type,
                                options=_options(self.cfg, object_type)) as matcher:
            result = matcher.match(new)
        self._apply(object_type, result, report, dry_run=False)
        return report

    def _apply(self, object_type: str, result: Any, report: DedupeReport, *, dry_run: bool) -> None:
        from sync.dedupe import cluster_pairs

        opts = _options(self.cfg, object_type)
        with self.store.session() as s:
            decided = st.decided_pairs(s, object_type)
        links = []
        for p in result.links:
            if decided.get((min(p.left, p.right), max(p.left, p.right))) == "rejected":
                report.skipped_rejected += 1
                continue
            links.append(p)
        if object_type == "account" and links:
            links = self._apart_in_hierarchy(links)
        clusters, refused, warnings = cluster_pairs(links, opts.max_cluster_size)
        report.warnings.extend([*result.warnings, *warnings])
        report.clusters = len(clusters)
        if dry_run:
            report.planned_clusters = clusters
            report.links = sum(len(c) - 1 for c in clusters)
            report.review_added = len(result.review) + len(refused)
            return
        evidence_of: dict[frozenset[str], Any] = {frozenset((p.left, p.right)): p for p in links}
        now = self.now()
        with self.store.session() as s:
            for cluster in clusters:
                ev = {f"{a}~{b}": {"probability": round(p.probability, 6), **dict(p.evidence)}
                      for a in cluster for b in cluster if a < b
                      and (p := evidence_of.get(frozenset((a, b)))) is not None}
                merge_id = st.link_entities(s, object_type, list(cluster), evidence=ev, run_id=self.run_id, now=now,
                                            policy=self._policy(object_type))
                if merge_id is not None:
                    report.merge_ids.append(merge_id)
                    report.links += len(cluster) - 1
                    # what was planned for the cluster's entities: the survivor (dirty) is
                    # planned again as one entity, the others never
                    for system, kinds in st.drop_pending_ops(s, object_type, list(cluster)).items():
                        per = report.withdrawn_ops.setdefault(system, {})
                        for kind, n in kinds.items():
                            per[kind] = per.get(kind, 0) + n
            report.review_added = st.add_review_pairs(s, object_type, [*result.review, *refused], self.run_id, now)
            report.review_open = len(st.review_rows(s, object_type, "open", limit=1_000_000))
        for w in report.warnings:
            log.warning("dedupe %s: %s", object_type, w)

    def _apart_in_hierarchy(self, links: list[Any]) -> list[Any]:
        """Drop account pairs one of which is the other's ancestor: a parent and its
        subsidiaries are distinct companies, however alike their names and shared
        domain (``sync.hierarchy``). Two children of one parent may still be one
        company entered twice."""
        from sync import hierarchy

        with self.store.session() as s:
            parents, _ = hierarchy.load_parents(s, {i for p in links for i in (p.left, p.right)})
        kept = []
        for p in links:
            up_l, up_r = hierarchy.chain(p.left, parents), hierarchy.chain(p.right, parents)
            if p.left in up_r or p.right in up_l:
                log.info("dedupe account: %s and %s are in one hierarchy: not linked", p.left, p.right)
                continue
            kept.append(p)
        return kept

    # ------------------------------------------------------------------ review

    def decide(self, review_id: int, accept: bool) -> dict[str, Any]:
        """Accept (link the pair now) or reject (never link it) one review entry."""
        now = self.now()
        with self.store.session() as s:
            row = s.get(st.MatchReviewRow, review_id)
            if row is None:
                raise LookupError(f"no review entry {review_id}")
            if row.state != "open":
                raise ValueError(f"review entry {review_id} is already {row.state}")
            merge_id, note = None, None
            if accept:
                # a side may have been linked elsewhere since the pair was queued: link
                # the entities the two records belong to now, and say so
                left, right = (st.current_entity(s, row.object_type, i) for i in (row.left_id, row.right_id))
                gone = [i for i, cur in ((row.left_id, left), (row.right_id, right)) if cur is None]
                if gone:
                    raise ValueError(f"review entry {review_id}: {row.object_type} {gone[0]} no longer exists "
                                     "(deleted); reject the pair instead")
                assert left is not None and right is not None
                if left == right:
                    note = f"already one entity ({left}): nothing to link"
                else:
                    merge_id = st.link_entities(
                        s, row.object_type, [left, right], run_id=self.run_id, now=now,
                        policy=self._policy(row.object_type),
                        evidence={f"{row.left_id}~{row.right_id}": {"probability": row.probability,
                                                                   "accepted_by": "review", **dict(row.evidence)}},
                    )
                    if merge_id is None:
                        raise ValueError(f"review entry {review_id}: {left} and {right} could not be linked")
                    moved = [f"{i} is now part of {cur}" for i, cur in ((row.left_id, left), (row.right_id, right))
                             if cur != i]
                    if moved:
                        note = "linked the entities the pair now belongs to (" + "; ".join(moved) + ")"
                row.merge_id = merge_id
                if row.object_type == "opportunity" and merge_id is not None:  # roles follow the link
                    from sync.dedupe_opportunity import follow_contact_roles

                    follow_contact_roles(s, [merge_id])
            row.state, row.decided_at = ("accepted" if accept else "rejected"), now
            return {"id": review_id, "state": row.state, "merge_id": merge_id, "note": note}

    def undo(self, merge_id: int) -> dict[str, Any]:
        """Restore the entities of a ledger entry. Records a system merged stay merged
        there (HubSpot has no unmerge): the entity keeps living in the store and in the
        systems where it still has records, and is not re-created where it was merged
        away; their before-images stay in the ledger."""
        with self.store.session() as s:
            entry = st.undo_link(s, merge_id, self.now())
            if entry.object_type == "opportunity":  # each deal: the contact roles its records name
                from sync.dedupe_opportunity import restore_contact_roles

                restore_contact_roles(s, merge_id)
            remote = {
                system: [f"{r['native_type']} {', '.join(r['merged'])} stay merged into {r['into']} "
                         f"({system} cannot unmerge; before-images in merge ledger {merge_id})" for r in records]
                for system, records in (entry.remote_results or {}).items()
            }
            return {"merge_id": merge_id, "object": entry.object_type, "survivor": entry.survivor_id,
                    "restored": list(entry.merged_ids), "policy": entry.policy, "remote": remote}
