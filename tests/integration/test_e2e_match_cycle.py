"""Tier 2 inside the cycle: a first full sync links what a batch ``revsync dedupe`` run
over the same store would link (the matcher sees reconciled entities: names,
companies, phones, addresses, not just the email a pull leaves), scored against the
sandbox's ground truth. Real clients against the sandbox; dry runs, so both stores
read the same seed data."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mapping.canonical import ObjectType
from sync import store as st
from sync.match import Deduper
from tests.integration.e2e_support import load_ground_truth, open_world

pytestmark = pytest.mark.slow

#: enough accounts for more than MIN_TRAIN_RECORDS contact records: the model trains
ACCOUNTS = 320


def _pair_f1(world: Any, truth: dict[str, Any], kind: str) -> dict[str, float]:
    """Pairwise precision / recall / F1 of the store's clusters (records by canonical id)."""
    true_of = {(r["system"], r["id"]): c["entity"] for c in truth["entities"][kind] for r in c["records"]}
    with world.store.session() as s:
        owner = {(system, rid): cid for system, rid, cid in s.execute(
            select(st.ExternalRefRow.system, st.ExternalRefRow.remote_id, st.ExternalRefRow.canonical_id)
            .where(st.ExternalRefRow.object_type == kind))}
    keys = [k for k in true_of if k in owner]
    both = Counter((owner[k], true_of[k]) for k in keys)
    predicted = Counter(owner[k] for k in keys)
    real = Counter(true_of[k] for k in keys)

    def pairs(c: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in c.values())

    correct, pred, true = pairs(both), pairs(predicted), pairs(real)
    p = correct / pred if pred else 1.0
    r = correct / true if true else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


@pytest.mark.parametrize("noise", ["classic", "real"])
def test_first_sync_links_like_a_batch_run(make_sandbox: Any, tmp_path: Path, noise: str) -> None:
    sb = make_sandbox(accounts=ACCOUNTS, seed=11, noise=noise)
    truth = load_ground_truth(sb)

    in_cycle = open_world(sb, tmp_path / "a")
    first = in_cycle.runner.run_cycle(dry_run=True, force=True)
    assert first.status == "ok", first.messages
    assert first.matched_links > 0

    batch = open_world(sb, tmp_path / "b")
    settings = batch.runner.settings
    batch.runner.settings = dataclasses.replace(settings, dedupe={**settings.dedupe, "enabled": False})
    assert batch.runner.run_cycle(dry_run=True, force=True).status == "ok"
    tier1 = {k: _pair_f1(batch, truth, k) for k in ("account", "contact")}
    deduper = Deduper(batch.store, settings.dedupe, now=batch.runner.now, policies=settings.policies)
    for ot in (ObjectType.ACCOUNT, ObjectType.CONTACT):
        rep = deduper.run_batch(ot.value)
        assert rep.trained or ot is ObjectType.ACCOUNT  # contacts: enough records to train

    for kind in ("account", "contact"):
        a, b = _pair_f1(in_cycle, truth, kind), _pair_f1(batch, truth, kind)
        print(f"F1 {kind}: cycle {a} batch {b} tier1 {tier1[kind]}")
        assert abs(a["f1"] - b["f1"]) <= 0.002, (kind, a, b)
        assert a["precision"] >= (0.99 if noise == "classic" else 0.95), (kind, a)
        assert a["f1"] >= tier1[kind]["f1"], (kind, a, tier1[kind])
    # the contact model trained on the systems' records, not on what tier 1 left
    with in_cycle.store.session() as s:
        model = st.get_match_model(s, "contact")
        assert model is not None
        refs = s.scalar(select(func.count()).select_from(st.ExternalRefRow)
                        .where(st.ExternalRefRow.object_type == "contact"))
    import json

    assert json.loads(model.model_json)["revsync"]["trained_on"] == refs
