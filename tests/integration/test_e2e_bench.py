"""The throughput benchmark runs end to end at a tiny size and reports sane numbers."""

from __future__ import annotations

from pathlib import Path

from bench import throughput


def test_throughput_reports_one_consistent_result(tmp_path: Path) -> None:
    result = throughput.run(12, 3, profile=tmp_path / "prof.txt", out=tmp_path / "out", gap=0)
    assert result["status"] == "ok"
    assert result["records"] > 12 * 3
    assert result["records_per_s"] == round(result["records"] / result["seconds"], 1)
    assert set(result["api_calls"]) == {"salesforce", "hubspot", "planhat"}
    assert all(n > 0 for n in result["api_calls"].values())
    assert result["peak_rss_mb"] > 10
    assert result["store_mb"] > 0
    # the floor read the same objects: at least every record cycle 1 pulled
    floor = result["floor"]
    assert floor["records"] >= result["records"] and floor["seconds"] > 0
    first, second, third = (result["cycles"][k] for k in ("1", "2", "3"))
    assert first["floor_ratio"] == round(result["seconds"] / floor["seconds"], 2)
    assert second["written"] == {} and second["status"] == "ok"
    # cycle 2 reads but writes nothing; cycle 1's counters were reset before it
    assert 0 < sum(second["api_calls"].values()) < sum(result["api_calls"].values())
    # cycle 3 (nothing changed) maps nothing: what it re-reads is skipped on its raw hash
    assert third["written"] == {} and third["status"] == "ok"
    assert third["mapped"] == {"salesforce": 0, "hubspot": 0, "planhat": 0}, third
    assert sum(third["pulled"].values()) > 0  # Planhat at least lists everything again
    # per stage: wall and CPU seconds (the pull stage once, however many threads it ran)
    stages = first["stages"]
    assert {"pull", "resolve", "push"} <= set(stages), stages
    assert all(v["cpu_seconds"] >= 0 and v["seconds"] >= 0 for v in stages.values())
    assert first["cpu_seconds"] >= stages["pull"]["cpu_seconds"] > 0
    assert "by cumulative time" in (tmp_path / "prof.txt").read_text()
    # the generated data is cached: a second call reuses the same directory
    cached = throughput.data_dir(12, 3, tmp_path / "out")
    assert cached == tmp_path / "out" / "data-a12-s3" and (cached / "manifest.json").is_file()
