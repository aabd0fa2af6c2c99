"""Namesakes (issue #11): one name at one company is weighed by how often the data
shows two people behind it, and the review queue of one run is capped."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from sync.dedupe import (
    MIN_REVIEW_CAP,
    MatchOptions,
    Pair,
    _decide,
    _Session,
        train_model,
)
from sync.dedupe_models import CONTACT_SPEC, NAMESAKE_LEVELS, contact_namesake_u

# Surnames and given names as a German and a Dutch CRM export would hold them (not the
# sandbox generator's lists), companies with their own mail domains.
GIVEN = ["Jürgen", "Anneke", "Sven", "Marieke", "Lotte", "Joost", "Henrike", "Wiebke", "Ruud", "Femke",
         "Maarten", "Sanne", "Dirk", "Ilse", "Kees", "Britta"]
FAMILY = ["de Vries", "Müller", "van Dijk", "Schneider", "Bakker", "Fischer", "Janssen", "Weber",
          "Visser", "Meyer", "Smit", "Wagner", "de Boer", "Becker", "Mulder", "Hoffmann", "Bos", "Koch"]
TITLES = ["Einkaufsleiter", "Inkoper", "Head of Procurement", "Controller", "Teamleider Inkoop", "CFO"]


def _people(companies: int, namesake_share: float, seed: int = 3, personal: float = 0.3) -> list[dict[str, Any]]:
    """Two records per person (CRM and marketing, the same work mailbox, except that
    ``personal`` of marketing copies hold a private web.de address instead); at
    ``namesake_share`` of companies a second person of the first one's name (half of
    them with the same title). A name taken at the company gets a number appended to
    its mailbox (``jan.bos`` / ``jan.bos2``), as mail admins do."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for c in range(companies):
        company, domain = f"Handelsgesellschaft {c} GmbH", f"hg{c}.de"
        staff: list[tuple[str, str, str, str]] = []
        used: set[str] = set()

        def hire(first: str, last: str, title: str, staff: list[Any] = staff, used: set[str] = used) -> None:
            local = base = f"{first}.{last}".lower().replace(" ", "")
            k = 2
            while local in used:
                local, k = f"{base}{k}", k + 1
            used.add(local)
            staff.append((first, last, local, title))

        for _ in range(3):
            hire(rng.choice(GIVEN), rng.choice(FAMILY), rng.choice(TITLES))
        if rng.random() < namesake_share:
            first, last, _, title = staff[0]
            hire(first, last, title if rng.random() < 0.5 else rng.choice(TITLES))
        for k, (first, last, local, title) in enumerate(staff):
            for system in ("crm", "mkt"):
                email = f"{local}@{domain}"
                if system == "mkt" and rng.random() < personal:
                    email = f"{local.replace('.', '')}{rng.randrange(10, 99)}@web.de"
                out.append({"id": f"{system}-{c}-{k}", "first_name": first, "last_name": last,
                            "email": email, "company": company, "title": title})
    return out


def _estimate(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    session = _Session(CONTACT_SPEC)
    try:
        table, n = session.register(records, "records")
        return dict(contact_namesake_u(session.con, table.physical_name, n))
    finally:
        session.close()


def test_namesake_u_follows_the_namesakes_the_data_shows() -> None:
    few, many = _estimate(_people(400, 0.0)), _estimate(_people(400, 0.3))
    key = ("name", NAMESAKE_LEVELS["same"])
    assert set(few) <= {("name", label) for label in NAMESAKE_LEVELS.values()}
    # no two mailboxes behind one name at one company: only the weak prior is left
    assert few[key] < many[key] / 5
    # 30 % of companies hold a namesake pair (its two people x two records: four record
    # pairs of two people beside two of one person each). u counts the namesake pairs
    # the email cannot tell apart (not two mailboxes at the company's domain: a work and
    # a personal address, or two personal ones): about their share of all pairs, not 0
    records = _people(400, 0.3)
    n = len(records)

    def one_name(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["company"] == b["company"] and a["title"] == b["title"] and (
            (a["first_name"], a["last_name"]) == (b["first_name"], b["last_name"]))

    def person(r: dict[str, Any]) -> str:
        return r["id"].split("-", 1)[1]

    pairs = [(a, b) for i, a in enumerate(records) for b in records[i + 1 :] if one_name(a, b)]
    open_ = [(a, b) for a, b in pairs if not (a["email"].endswith(".de") and b["email"].endswith(".de")
                                              and "web.de" not in (a["email"] + b["email"]))]
    two = sum(person(a) != person(b) for a, b in open_)
    truth = two / (n * (n - 1) / 2)
    assert len(pairs) > len(open_) > two > 0
    assert truth * 0.6 <= many[key] <= truth * 1.5, (many[key], truth)
    # and without personal addresses the email tells every namesake pair apart: u
    # falls to the floor of one pair
    alone = _estimate(_people(400, 0.3, personal=0.0))[key]
    assert alone < many[key] / 10


def test_a_trained_model_keeps_the_estimated_namesake_u() -> None:
    records = _people(360, 0.3)
    assert len(records) >= 2_000  # trained, not the priors
    model = json.loads(train_model(records, CONTACT_SPEC))
    levels = {lv.get("label_for_charts"): lv for c in model["comparisons"] if c["output_column_name"] == "name"
              for lv in c["comparison_levels"]}
    estimated = _estimate(records)
    assert ("name", NAMESAKE_LEVELS["same"]) in estimated  # (no title is missing here)
    for (_, label), u in estimated.items():
        assert levels[label]["u_probability"] == pytest.approx(u)


def _pair(i: int, p: float) -> Pair:
    return Pair(f"a{i:05d}", f"b{i:05d}", p, {})


def test_the_review_queue_is_capped_at_a_share_of_the_records() -> None:
    scored = [_pair(i, 0.8 + 0.0001 * (i % 1000)) for i in range(400)] + [_pair(9999, 0.995)]
    capped = _decide(scored, MatchOptions(max_review_share=0.01), "{}", records=20_000)
    assert len(capped.review) == 200  # 1 % of 20,000 records
    assert min(p.probability for p in capped.review) >= max(
        p.probability for p in scored if p not in capped.review and p.probability < 0.99
    )  # the strongest are kept
    assert [p.left for p in capped.links] == ["a09999"]  # links untouched
    assert len(_decide(scored, MatchOptions(), "{}", records=20_000).review) == 400  # no cap by default
    small = _decide(scored, MatchOptions(max_review_share=0.01), "{}", records=50)
    assert len(small.review) == MIN_REVIEW_CAP  # a small run still asks its questions


def test_review_cap_is_validated() -> None:
    with pytest.raises(ValueError):
        MatchOptions(max_review_share=-0.1)
