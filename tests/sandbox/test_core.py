"""Unit tests of the sandbox core: fault specs, the injector, RateWindow, Stats, Clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from sandbox.core import Clock, Fault, FaultInjector, RateWindow, Stats
from sandbox.faults import FaultSpecError, parse_spec

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- spec parsing


def test_string_spec_parses_systems_kinds_probabilities_params_and_seed() -> None:
    spec = parse_spec(
        "hubspot:rate_limit=0.05;retry_after=2, salesforce:server_error=0.02,"
        " *:reset=0.01, salesforce/composite/sobjects:lock=0.1, seed=7,"
        " planhat:validation=1;field=email;value=bad"
    )
    assert spec.seed == 7
    assert [(r.system, r.kind, r.p, r.endpoint) for r in spec.rules] == [
        ("hubspot", "rate_limit", 0.05, None),
        ("salesforce", "server_error", 0.02, None),
        ("*", "reset", 0.01, None),
        ("salesforce", "lock", 0.1, "composite/sobjects"),
        ("planhat", "validation", 1.0, None),
    ]
    assert spec.rules[0].params == {"retry_after": 2}
    assert spec.rules[4].params == {"field": "email", "value": "bad"}


def test_param_values_are_typed() -> None:
    spec = parse_spec("salesforce:rate_limit=1;daily=true;retry_after=1.5;note=x;n=none")
    assert spec.rules[0].params == {"daily": True, "retry_after": 1.5, "note": "x", "n": None}


def test_dict_and_json_forms_parse_the_same() -> None:
    as_dict = {
        "seed": 3,
        "rules": [{"system": "hubspot", "kind": "unavailable", "p": 0.5, "params": {"retry_after": 1}}],
        "script": [{"system": "planhat", "endpoint": "companies", "nth": [2, 5], "kind": "slow",
                    "params": {"seconds": 0.1}, "count": 2}],
    }
    import json

    for spec in (parse_spec(as_dict), parse_spec(json.dumps(as_dict))):
        assert spec.seed == 3
        assert spec.rules[0].kind == "unavailable" and spec.rules[0].p == 0.5
        assert spec.script[0].nth == (2, 5) and spec.script[0].count == 2


def test_rules_may_be_given_as_a_string_inside_the_dict() -> None:
    spec = parse_spec({"rules": "hubspot:server_error=0.3", "seed": 1})
    assert spec.rules[0].system == "hubspot" and spec.rules[0].p == 0.3


def test_empty_and_none_specs_are_empty() -> None:
    assert parse_spec(None).empty
    assert parse_spec("").empty
    assert parse_spec({}).empty


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hubspot:rate_limit", "expected system:kind=probability"),
        ("rate_limit=0.1", "expected system:kind=probability"),
        ("zendesk:rate_limit=0.1", "unknown system"),
        ("hubspot:explode=0.1", "unknown fault kind"),
        ("hubspot:rate_limit=1.5", "outside 0..1"),
        ("hubspot:rate_limit=lots", "not a number"),
        ("hubspot:rate_limit=0.1;retry_after", "needs name=value"),
        ("seed=abc", "seed must be an integer"),
        ("{not json", "not valid JSON"),
        ({"rules": [{"system": "hubspot"}]}, "'kind' is required"),
        ({"script": [{"kind": "reset"}]}, "'nth' is required"),
        ({"script": [{"kind": "reset", "nth": 0}]}, "must be >= 1"),
        ({"script": [{"kind": "reset", "nth": 1, "write": "yes"}]}, "'write' must be"),
        ({"script": [{"kind": "reset", "nth": 1, "when": 1}]}, "unknown keys"),
        ({"bogus": 1}, "unknown keys"),
        ({"seed": "7"}, "'seed' must be an integer"),
        ({"rules": 5}, "'rules' must be a list"),
    ],
)
def test_bad_specs_are_rejected_with_a_clear_message(spec: object, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_spec(spec)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- injector


def _draws(inj: FaultInjector, n: int, system: str = "hubspot", endpoint: str = "crm.list",
           write: bool = False) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(n):
        fault = inj.draw(system, endpoint, write=write)
        out.append(fault.kind if fault else None)
    return out


def test_same_seed_repeats_and_different_seed_differs() -> None:
    spec = "hubspot:rate_limit=0.3,hubspot:server_error=0.2"
    a = _draws(FaultInjector(spec, seed=1), 300)
    b = _draws(FaultInjector(spec, seed=1), 300)
    c = _draws(FaultInjector(spec, seed=2), 300)
    assert a == b
    assert a != c


def test_seed_in_spec_overrides_constructor_seed() -> None:
    a = _draws(FaultInjector("hubspot:rate_limit=0.5,seed=9", seed=1), 100)
    b = _draws(FaultInjector("hubspot:rate_limit=0.5", seed=9), 100)
    assert a == b


def test_probabilities_are_roughly_honoured() -> None:
    draws = _draws(FaultInjector("hubspot:rate_limit=0.2", seed=5), 5000)
    rate = draws.count("rate_limit") / len(draws)
    assert 0.17 < rate < 0.23
    assert set(draws) == {None, "rate_limit"}


def test_rules_only_match_their_system_and_endpoint() -> None:
    inj = FaultInjector("hubspot/crm.search:server_error=1", seed=0)
    assert _draws(inj, 3, system="hubspot", endpoint="crm.search") == ["server_error"] * 3
    assert _draws(inj, 3, system="hubspot", endpoint="crm.list") == [None] * 3
    assert _draws(inj, 3, system="salesforce", endpoint="crm.search") == [None] * 3


def test_star_matches_every_system() -> None:
    inj = FaultInjector("*:unavailable=1;retry_after=3")
    for system in ("salesforce", "hubspot", "planhat"):
        fault = inj.draw(system, "x", write=False)
        assert fault == Fault("unavailable", {"retry_after": 3})


def test_write_only_kinds_are_never_drawn_for_reads() -> None:
    inj = FaultInjector("salesforce:lock=1,salesforce:partial=1;fraction=0.5")
    assert _draws(inj, 5, system="salesforce", write=False) == [None] * 5
    assert _draws(inj, 2, system="salesforce", write=True) == ["lock", "lock"]


def test_first_listed_rule_that_fires_wins() -> None:
    inj = FaultInjector("planhat:server_error=1,planhat:rate_limit=1")
    assert _draws(inj, 4, system="planhat") == ["server_error"] * 4


def test_draws_depend_on_the_per_endpoint_call_number_not_on_interleaving() -> None:
    spec = "*:server_error=0.4"
    alone = _draws(FaultInjector(spec, seed=3), 50, endpoint="a")
    mixed = FaultInjector(spec, seed=3)
    interleaved: list[str | None] = []
    for _ in range(50):
        mixed.draw("hubspot", "b", write=False)
        fault = mixed.draw("hubspot", "a", write=False)
        interleaved.append(fault.kind if fault else None)
    assert interleaved == alone


def test_scripted_fault_fires_on_the_nth_matching_call_only() -> None:
    inj = FaultInjector(
        {"script": [{"system": "hubspot", "endpoint": "crm.search", "nth": 3,
                     "kind": "rate_limit", "params": {"retry_after": 1}}]}
    )
    results = []
    for _ in range(5):
        inj.draw("hubspot", "crm.list", write=False)  # does not match: not counted
        results.append(inj.draw("hubspot", "crm.search", write=False))
    assert results[:2] == [None, None]
    assert results[2] == Fault("rate_limit", {"retry_after": 1})
    assert results[3:] == [None, None]


def test_scripted_fault_with_count_and_several_nths() -> None:
    inj = FaultInjector({"script": [{"system": "planhat", "nth": [1, 5], "count": 2, "kind": "server_error"}]})
    assert _draws(inj, 7, system="planhat") == [
        "server_error", "server_error", None, None, "server_error", "server_error", None,
    ]


def test_scripted_fault_can_match_writes_only() -> None:
    inj = FaultInjector({"script": [{"system": "salesforce", "nth": 1, "write": True, "kind": "lock"}]})
    assert inj.draw("salesforce", "query", write=False) is None
    fault = inj.draw("salesforce", "composite/sobjects", write=True)
    assert fault is not None and fault.kind == "lock"


def test_scripted_faults_win_over_random_rules() -> None:
    inj = FaultInjector({"rules": "planhat:server_error=1", "script": [{"nth": 2, "kind": "reset"}]})
    assert _draws(inj, 3, system="planhat") == ["server_error", "reset", "server_error"]


def test_set_spec_replaces_rules_and_restarts_numbering() -> None:
    inj = FaultInjector({"script": [{"nth": 2, "kind": "reset"}]})
    assert _draws(inj, 1) == [None]
    inj.set_spec({"script": [{"nth": 2, "kind": "slow"}]})
    assert _draws(inj, 2) == [None, "slow"]
    inj.set_spec(None)
    assert _draws(inj, 3) == [None, None, None]


def test_set_spec_rejects_a_bad_spec_and_keeps_the_old_one() -> None:
    inj = FaultInjector("hubspot:server_error=1")
    with pytest.raises(FaultSpecError):
        inj.set_spec("hubspot:nope=1")
    assert _draws(inj, 1) == ["server_error"]


def test_describe_round_trips_through_the_parser() -> None:
    inj = FaultInjector("hubspot:rate_limit=0.25;retry_after=2,seed=4")
    again = FaultInjector(inj.describe())
    assert again.spec == inj.spec and again.seed == 4


def test_injector_is_thread_safe_for_scripted_counts() -> None:
    inj = FaultInjector({"script": [{"nth": 500, "kind": "server_error"}]})
    hits: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(250):
            fault = inj.draw("hubspot", "x", write=False)
            if fault is not None:
                with lock:
                    hits.append(fault.kind)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hits == ["server_error"]


# --------------------------------------------------------------------------- RateWindow / Clock


def test_rate_window_allows_limit_then_denies_until_the_window_slides() -> None:
    clock = Clock(fixed=T0)
    window = RateWindow(3, 10, clock)
    assert [window.hit()[:2] for _ in range(3)] == [(True, 2), (True, 1), (True, 0)]
    allowed, remaining, wait = window.hit()
    assert (allowed, remaining) == (False, 0)
    assert 0 < wait <= 10.1
    clock.advance(5)
    assert window.hit()[0] is False
    clock.advance(5.2)
    assert window.hit()[:2] == (True, 2)
    assert window.remaining() == 2


def test_rate_window_slides_hit_by_hit() -> None:
    clock = Clock(fixed=T0)
    window = RateWindow(2, 10, clock)
    window.hit()
    clock.advance(6)
    window.hit()
    assert window.hit()[0] is False
    clock.advance(4.2)  # the first hit has left the window, the second has not
    assert window.hit()[:2] == (True, 0)
    assert window.hit()[0] is False


def test_rate_window_handles_large_daily_limits_without_per_hit_memory() -> None:
    clock = Clock(fixed=T0)
    window = RateWindow(1_000_000, 86_400, clock)
    for _ in range(20_000):
        window.hit()
        clock.advance(0.5)
    assert window.remaining() == 1_000_000 - 20_000
    assert len(window._buckets) <= RateWindow.RESOLUTION + 1


def test_rate_window_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RateWindow(0, 10, Clock())
    with pytest.raises(ValueError):
        RateWindow(5, 0, Clock())


def test_clock_is_aware_utc_and_can_be_frozen_and_advanced() -> None:
    clock = Clock(fixed=T0)
    assert clock.now() == T0 and clock.now().tzinfo is not None
    clock.advance(90)
    assert (clock.now() - T0).total_seconds() == 90
    assert clock.timestamp() == T0.timestamp() + 90
    real = Clock()
    assert real.now().tzinfo is not None
    before = real.now()
    real.advance(3600)
    assert (real.now() - before).total_seconds() >= 3600
    with pytest.raises(ValueError):
        Clock(fixed=datetime(2026, 1, 1))  # naive


# --------------------------------------------------------------------------- Stats


def test_stats_counts_calls_statuses_records_and_faults() -> None:
    stats = Stats()
    stats.call("hubspot", "crm.search", 200)
    stats.call("hubspot", "crm.search", 429)
    stats.call("hubspot", "crm.list", 200)
    stats.served("hubspot", 100)
    stats.written("planhat", 7)
    stats.fault("hubspot", "rate_limit")
    snap = stats.snapshot()
    assert snap["hubspot"]["calls"] == 3
    assert snap["hubspot"]["by_endpoint"] == {"crm.search": 2, "crm.list": 1}
    assert snap["hubspot"]["by_status"] == {"200": 2, "429": 1}
    assert snap["hubspot"]["records_served"] == 100
    assert snap["hubspot"]["faults"] == {"rate_limit": 1}
    assert snap["planhat"]["records_written"] == 7
    assert snap["salesforce"]["calls"] == 0


def test_stats_snapshot_is_a_copy_and_reset_zeroes() -> None:
    stats = Stats()
    stats.call("planhat", "companies", 200)
    snap = stats.snapshot()
    stats.call("planhat", "companies", 200)
    assert snap["planhat"]["by_endpoint"] == {"companies": 1}
    stats.reset()
    assert stats.snapshot()["planhat"]["calls"] == 0
    assert stats.snapshot()["planhat"]["by_endpoint"] == {}


def test_stats_are_thread_safe() -> None:
    stats = Stats()

    def worker() -> None:
        for _ in range(1000):
            stats.call("salesforce", "query", 200)
            stats.served("salesforce", 2)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()["salesforce"]
    assert snap["calls"] == 4000 and snap["records_served"] == 8000
    assert snap["by_status"] == {"200": 4000}
