"""Model details: the phone number-block level for accounts, m floors after training."""

from __future__ import annotations

import json
from typing import Any

from sync.dedupe import MIN_M_PROBABILITY, _debias_u, match_accounts


def _account(rid: str, phone: str) -> dict[str, Any]:
    return {"id": rid, "name": "Brightwave Analytics Inc.", "domain": "brightwave.io", "phone": phone, "country": "US"}


def test_a_phone_from_the_same_block_is_its_own_level() -> None:
    result = match_accounts(
        [
            _account("a", "+14155550100"),
            _account("b", "(415) 555-7321"),  # same block: only the last 4 digits differ
            _account("c", "+12125550100"),  # another area code
        ]
    )
    evidence = {(p.left, p.right): p.evidence["phone"] for p in [*result.links, *result.review]}
    assert evidence[("a", "b")].startswith("same number block")
    assert evidence[("a", "c")] == "different"
    assert evidence[("b", "c")] == "different"


def _model(levels: list[tuple[str, float, float]]) -> str:
    return json.dumps(
        {
            "probability_two_random_records_match": 1e-5,
            "comparisons": [
                {
                    "output_column_name": "address",
                    "comparison_levels": [
                        {"sql_condition": "street_l IS NULL", "is_null_level": True},
                        *(
                            {"sql_condition": sql, "m_probability": m, "u_probability": u}
                            for sql, m, u in levels
                        ),
                    ],
                }
            ],
        }
    )


def test_a_level_training_never_saw_among_matches_does_not_veto() -> None:
    # EM on data where no matching pair differs in address gives 'different' m = 0
    trained = _model([("street_l = street_r", 0.9, 1e-4), ("postcode_l = postcode_r", 0.1, 2e-3), ("ELSE", 0.0, 0.998)])
    levels = json.loads(_debias_u(trained, 100_000))["comparisons"][0]["comparison_levels"]
    m = {lv["sql_condition"]: lv.get("m_probability") for lv in levels}
    assert m["ELSE"] == MIN_M_PROBABILITY
    assert m["postcode_l = postcode_r"] == 0.1  # the others keep their weight …
    assert abs(m["street_l = street_r"] - (0.9 - MIN_M_PROBABILITY)) < 1e-12  # … the top one gives way
    assert abs(sum(v for v in m.values() if v is not None) - 1.0) < 1e-12


def test_m_above_the_floor_is_unchanged() -> None:
    trained = _model([("street_l = street_r", 0.7, 1e-4), ("ELSE", 0.3, 0.9999)])
    levels = json.loads(_debias_u(trained, 100_000))["comparisons"][0]["comparison_levels"]
    assert [lv.get("m_probability") for lv in levels] == [None, 0.7, 0.3]


def test_floors_after_training_weaken_evidence_against_and_lift_identifier_levels() -> None:
    trained = json.dumps({
        "probability_two_random_records_match": 1e-4,
        "comparisons": [{
            "output_column_name": "name_domain",
            "comparison_levels": [
                {"sql_condition": "x IS NULL", "is_null_level": True},
                {"sql_condition": "a", "label_for_charts": "name similar, domain exact", "m_probability": 0.05,
                 "u_probability": 1e-6},
                {"sql_condition": "b", "label_for_charts": "fixed one", "m_probability": 1e-9, "u_probability": 1e-3,
                 "fix_m_probability": True, "fix_u_probability": True},
                {"sql_condition": "ELSE", "m_probability": 0.01, "u_probability": 0.99},
            ],
        }],
    })
    out = json.loads(_debias_u(trained, 10_000, {"name_domain": 0.3},
                               (("name_domain", "name similar, domain exact", 200.0),)))
    levels = {lv["sql_condition"]: lv for lv in out["comparisons"][0]["comparison_levels"]}
    assert levels["ELSE"]["m_probability"] / levels["ELSE"]["u_probability"] >= 0.3 - 1e-12  # at most weakly against
    similar = levels["a"]
    odds = 1e-4 / (1 - 1e-4) * similar["m_probability"] / similar["u_probability"]
    assert abs(odds - 200.0) < 1e-6  # the level alone gives odds 200
    fixed = levels["b"]
    assert (fixed["m_probability"], fixed["u_probability"]) == (1e-9, 1e-3)  # fixed levels untouched
