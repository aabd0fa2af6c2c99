"""Tier-2 matcher: labelled pairs, review band, cluster cap, incremental, model JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.dedupe import (
    IncrementalMatcher,
    MatchOptions,
    MatchResult,
    Pair,
    cluster_pairs,
    match_accounts,
    match_contacts,
    train_model,
    typo_apart,
)
from sync.dedupe_models import CONTACT_SPEC

FIXTURE = Path(__file__).parent.parent / "fixtures" / "dedupe" / "contacts.json"


@pytest.fixture(scope="module")
def labelled() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def result(labelled: dict[str, Any]) -> MatchResult:
    return match_contacts(labelled["records"])


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _probabilities(pairs: list[Pair]) -> dict[tuple[str, str], float]:
    return {_key(p.left, p.right): p.probability for p in pairs}


def test_obvious_duplicates_link_and_cluster(labelled: dict[str, Any], result: MatchResult) -> None:
    links = _probabilities(result.links)
    for a, b in labelled["same"]:
        assert links.get(_key(a, b), 0.0) >= 0.99, (a, b)
        assert sorted([a, b]) in result.clusters
    assert result.warnings == []


def test_obvious_non_duplicates_stay_apart(labelled: dict[str, Any], result: MatchResult) -> None:
    judged = _probabilities(result.links) | _probabilities(result.review)
    for a, b in labelled["different"]:
        assert _key(a, b) not in judged, (a, b)
    clustered = {i for c in result.clusters for i in c}
    # only the labelled duplicates cluster: the 30 distinct people stay alone
    assert clustered == {i for pair in labelled["same"] for i in pair}


def test_doubtful_pair_goes_to_review_with_evidence(labelled: dict[str, Any], result: MatchResult) -> None:
    review = {_key(p.left, p.right): p for p in result.review}
    for a, b in labelled["doubtful"]:
        pair = review[_key(a, b)]
        assert 0.8 <= pair.probability < 0.99
        assert pair.evidence["name"] == "first and last exact"
        assert pair.evidence["company"] == "different"
        assert pair.evidence["email"] == "missing"
    assert all(p.probability < 0.99 for p in result.review)


def test_thresholds_are_options(labelled: dict[str, Any]) -> None:
    strict = match_contacts(labelled["records"], options=MatchOptions(review_from=0.999, auto_link=0.9999))
    assert not any(p.probability < 0.999 for p in strict.review + strict.links)
    loose = match_contacts(labelled["records"], options=MatchOptions(auto_link=0.8))
    assert _key(*labelled["doubtful"][0]) in _probabilities(loose.links)
    with pytest.raises(ValueError):
        MatchOptions(review_from=0.99, auto_link=0.9)


def test_cluster_cap_refuses_the_weakest_link_with_a_warning() -> None:
    chain = [Pair("a", "b", 0.999), Pair("b", "c", 0.998), Pair("c", "d", 0.995), Pair("x", "y", 0.999)]
    clusters, refused, warnings = cluster_pairs(chain, max_size=3)
    assert clusters == [["a", "b", "c"], ["x", "y"]]
    assert refused == [Pair("c", "d", 0.995)]
    assert len(warnings) == 1 and "cap 3" in warnings[0] and "c~d" in warnings[0]
    unbounded, none_refused, no_warning = cluster_pairs(chain, max_size=10)
    assert unbounded == [["a", "b", "c", "d"], ["x", "y"]] and not none_refused and not no_warning


def test_typo_apart_tells_a_slip_from_a_second_mailbox() -> None:
    assert typo_apart("priyaraghavan", "priyarahgavan")  # two letters swapped
    assert typo_apart("annakowalska", "annakowalsa")  # a letter dropped inside
    assert typo_apart("annakowalska", "annakowallska")  # a letter doubled inside
    assert not typo_apart("jsmith", "jsmith2")  # the second J. Smith's mailbox
    assert not typo_apart("matthew", "matthewr")  # another scheme's mailbox
    assert not typo_apart("annakowalska", "akowalska")


def test_identity_guard_never_joins_two_mailboxes_of_one_domain() -> None:
    identity = {"a": ("acme.io", "annak"), "b": ("acme.io", "annakowalska"), "c": ("acme.io", "annak0walska")}
    links = [Pair("a", "x", 0.999), Pair("b", "x", 0.998), Pair("b", "c", 0.997), Pair("d", "e", 0.995)]
    clusters, refused, warnings = cluster_pairs(links, identity=identity)
    # x fits a and b (two mailboxes): linked to neither; b and c are one mailbox mistyped
    assert clusters == [["b", "c"], ["d", "e"]]
    assert {(p.left, p.right) for p in refused} == {("a", "x"), ("b", "x")}
    assert any("two people" in w for w in warnings)
    # without the identities, x joins everything
    plain, _, _ = cluster_pairs(links)
    assert plain == [["a", "b", "c", "x"], ["d", "e"]]


def test_cluster_cap_in_a_match_run_sends_the_refused_link_to_review(labelled: dict[str, Any]) -> None:
    records = list(labelled["records"])
    records.append({**records[-10], "id": "r1b", "email": "robert.whitfield@northwind.com"})  # a third copy of r1
    capped = match_contacts(records, options=MatchOptions(max_cluster_size=2))
    assert capped.warnings and "cap 2" in capped.warnings[0]
    assert all(len(c) <= 2 for c in capped.clusters)
    whitfield = {"r1", "r2", "r1b"}
    refused = [p for p in capped.review if {p.left, p.right} <= whitfield]
    assert refused and all(p.probability >= 0.99 for p in refused)
    free = match_contacts(records)
    assert sorted(whitfield) in free.clusters and not free.warnings


def test_incremental_match_finds_the_stored_twin(labelled: dict[str, Any], result: MatchResult) -> None:
    stored = labelled["records"]
    twin = {"id": "new-1", "first_name": "Hiroshi", "last_name": "Nakamura", "email": "HIROSHI.NAKAMURA+news@blueharbor.io", "company": "Blue Harbor"}
    stranger = {"id": "new-2", "first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.mil", "company": "US Navy"}
    copy = {"id": "new-3", "first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.mil", "phone": "+1 202 555 0111"}
    with IncrementalMatcher(result.model_json, stored, object_type="contact") as matcher:
        found = matcher.match([twin, stranger, copy])
        stored_twin = next(r["id"] for r in stored if r.get("last_name") == "Nakamura")
        links = _probabilities(found.links)
        assert links.get(_key("new-1", stored_twin), 0.0) >= 0.99
        assert _key("new-2", "new-3") in links  # new records are matched among themselves too
        assert not any({p.left, p.right} <= {r["id"] for r in stored} for p in found.links + found.review)
        assert [c for c in found.clusters if "new-1" in c] == [sorted(["new-1", stored_twin])]
        again = matcher.match([{**twin, "id": "new-4"}])  # a second batch on the same matcher
        assert _key("new-4", stored_twin) in _probabilities(again.links)


def test_model_json_round_trip(labelled: dict[str, Any], result: MatchResult) -> None:
    model = json.loads(result.model_json)
    assert model["link_type"] == "dedupe_only"
    assert [c["output_column_name"] for c in model["comparisons"]] == ["name", "email", "phone", "company", "title", "place"]
    reused = match_contacts(labelled["records"], model_json=result.model_json)
    assert reused.model_json == result.model_json
    assert _probabilities(reused.links) == pytest.approx(_probabilities(result.links))
    assert _probabilities(reused.review) == pytest.approx(_probabilities(result.review))


def test_training_changes_parameters_and_keeps_the_json_loadable(labelled: dict[str, Any]) -> None:
    trained = json.loads(train_model(labelled["records"], CONTACT_SPEC))
    prior = json.loads(match_contacts(labelled["records"]).model_json)

    def email_u(model: dict[str, Any]) -> float:
        level = next(lv for lv in model["comparisons"][1]["comparison_levels"] if lv.get("label_for_charts") == "exact")
        return float(level["u_probability"])

    assert email_u(trained) != email_u(prior)
    again = match_contacts(labelled["records"], model_json=json.dumps(trained))
    assert {tuple(c) for c in again.clusters} >= {tuple(sorted(p)) for p in labelled["same"]}


def test_duplicate_ids_are_refused(labelled: dict[str, Any]) -> None:
    records = labelled["records"]
    with pytest.raises(ValueError, match="duplicate record id"):
        match_contacts([records[0], {**records[1], "id": records[0]["id"]}])


def test_accounts_shared_domain_alone_is_not_a_link() -> None:
    base = [
        {"id": f"a{i}", "name": f"Company {name}", "website": f"{name.lower()}.com", "phone": f"+1 415 555 01{i:02d}", "billing_postal_code": f"9{i:04d}", "industry": "software"}
        for i, name in enumerate(["Argon", "Boron", "Cobalt", "Dysprosium", "Erbium", "Fermium", "Gallium", "Hafnium", "Iridium", "Krypton"])
    ]
    records = [
        *base,
        {"id": "p1", "name": "Umbrella Corporation", "website": "https://www.umbrella.com", "phone": "+1 212 555 0100", "billing_postal_code": "10001", "industry": "pharma"},
        {"id": "p2", "name": "Umbrella Pharmaceuticals", "website": "umbrella.com/pharma", "phone": "+44 20 7946 0100", "billing_postal_code": "EC1A 1BB", "industry": "biotech"},
        {"id": "s1", "name": "Initech LLC", "website": "initech.com", "phone": "+1 512 555 0142", "billing_street": "4120 Freidrich Ln", "billing_postal_code": "78744", "industry": "software"},
        {"id": "s2", "name": "INITECH", "website": "http://www.initech.com/", "phone": "(512) 555-0142", "billing_street": "4120 Freidrich Lane", "billing_postal_code": "78744", "industry": "software"},
    ]
    result = match_accounts(records)
    links = _probabilities(result.links)
    assert _key("s1", "s2") in links
    assert _key("p1", "p2") not in links
    assert result.clusters == [["s1", "s2"]]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["contact", "account"])
def test_quality_holds_at_ten_times_the_size(kind: str) -> None:
    """Same model, same thresholds, sandbox data at n and 10n records: the trained
    model's precision and recall must not degrade with size (correlated evidence and
    u estimates polluted by matches are what would make them drift)."""
    from bench.match_quality import _sandbox, score
    from sync.dedupe import match_records
    from sync.dedupe_models import SPECS

    options = MatchOptions(train="always")
    for size in (1_000, 10_000):
        records, truth = _sandbox(kind, size, seed=3)
        result = match_records(records, SPECS[kind], options=options)
        quality = score(result, {r["id"]: truth[r["id"]] for r in records})
        assert quality["precision"] >= 0.999, (size, quality)
        assert quality["recall"] >= 0.95, (size, quality)


def test_a_common_name_is_not_a_blocking_key_on_its_own() -> None:
    """Twelve John Smiths with nothing else in common: the name block is dropped (it
    would grow as n²), so they are never compared; two rare-name records still are."""
    smiths = [{"id": f"s{i}", "first_name": "John", "last_name": "Smith", "title": f"t{i}"} for i in range(12)]
    rare = [
        {"id": "q1", "first_name": "Quentin", "last_name": "Zwolinski", "company": "Lumen Foods"},
        {"id": "q2", "first_name": "Quentin", "last_name": "Zwolinski", "company": "Orchid Biotech"},
    ]
    result = match_contacts([*smiths, *rare], options=MatchOptions(review_from=0.01, auto_link=0.999999))
    judged = {_key(p.left, p.right) for p in result.links + result.review}
    assert ("q1", "q2") in judged
    assert not any(a.startswith("s") for a, _ in judged)
