"""Throughput benchmark: the plain-read floor, a full sync, its echo and a quiet cycle.

    .venv/bin/python -m bench.throughput --accounts 1000 [--seed 42] [--noise real] [--profile top.txt]
        [--gap 60] [--postgres]

Seed data is generated once per (accounts, seed) into ``bench/out/`` (gitignored) and
reused. The sandbox runs in a SUBPROCESS (``revsync sandbox serve --data DIR --tier
off --port 0``, its JSON ready line read from stdout), so ``peak_rss_mb`` is revsync's
own: pull, mapping, reconcile, plan, push and the store. In one run: the floor
(``bench/floor.py``: the same pages with plain requests + executemany), cycle 1 (full
sync), the floor again on the synced data, then ``--gap`` seconds later cycle 2 (reads
our own writes back) and cycle 3 (nothing changed). Prints ONE JSON object: cycle 1's
``records``, ``seconds``, ``records_per_s``, ``api_calls``, ``written``/``failed``/
``entities``; ``peak_rss_mb``; ``store_mb``; ``floor`` and ``floor_after_sync``;
``cycles`` {"1", "2", "3"} each with ``seconds``, ``floor_ratio``, ``pulled``,
``mapped``, ``api_calls``, ``written``, ``cpu_seconds`` (this process, every thread: less
bound to the machine's load than wall time) and ``stages`` (per stage of the cycle: pull,
resolve, match_new, follow_merges, gate, push: its seconds, CPU seconds and how much it
raised the process's peak RSS); ``load_avg``. ``--postgres`` stores in a new
database on the cluster at ``$REVSYNC_TEST_POSTGRES_URL`` (``scripts/with-postgres``).
With ``--profile FILE`` cycle 1 runs under cProfile and the top functions (by
cumulative and by own time) are written to FILE, the raw stats to ``FILE.pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import requests

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
READY_TIMEOUT = 900.0  # seconds to wait for the sandbox to load its data
PROFILE_TOP = 40

T = TypeVar("T")


def data_dir(accounts: int, seed: int, out: Path = OUT, *, noise: str | None = None) -> Path:
    """The cached seed data for (accounts, seed, noise), generated on first use (in a subprocess).

    ``noise`` None is the generator's default profile (cached without a suffix).
    """
    tag = f"a{accounts}-s{seed}" + (f"-{noise}" if noise else "")
    target = out / f"data-{tag}"
    if (target / "manifest.json").is_file():
        return target
    tmp = out / f".tmp-{tag}"
    shutil.rmtree(tmp, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "cli", "sandbox", "generate", "--accounts", str(accounts), "--seed", str(seed),
         "--out", str(tmp), *(["--noise", noise] if noise else [])],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )
    tmp.rename(target)
    return target


@contextmanager
def sandbox_process(data: Path, ca_dir: Path) -> Iterator[dict[str, Any]]:
    """``revsync sandbox serve`` in a subprocess; yields its ready line (``Sandbox.info``)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "sandbox", "serve", "--data", str(data), "--tier", "off", "--port", "0",
         "--ca-dir", str(ca_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline() if proc.stdout else ""))
        reader.start()
        reader.join(READY_TIMEOUT)
        if not line or not line[0].strip():
            raise RuntimeError(f"the sandbox did not start (exit code {proc.poll()})")
        yield json.loads(line[0])
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SandboxStats:
    """The sandbox's call counters (control routes: never counted, never faulted)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.url = info["stats"]
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = info["ca_cert"]

    def reset(self) -> None:
        self.session.post(self.url.replace("/stats", "/stats/reset"), timeout=60).raise_for_status()

    def calls(self) -> dict[str, int]:
        resp = self.session.get(self.url, timeout=60)
        resp.raise_for_status()
        return {system: int(v.get("calls", 0)) for system, v in sorted(resp.json().items())}


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3)


class CpuClock:
    """CPU seconds of this process (every thread) since the last ``take``."""

    def __init__(self) -> None:
        self.start = time.process_time()

    def take(self) -> float:
        now = time.process_time()
        spent, self.start = now - self.start, now
        return round(spent, 2)


class StageClock:
    """Wall seconds per stage of a cycle (pull, reconcile+plan, match, push, the rest),
    and how much each stage raised the process's peak RSS (MB), measured by wrapping the
    runner's stage methods (bench only: nothing in the product)."""

    STAGES = ("_pull_all", "_resolve", "_match_new", "_follow_merges", "_gate")

    def __init__(self, runner: Any) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}  # CPU seconds of the process (all threads): less load-bound
        self.rss_rise: dict[str, float] = {}
        # a runner from before parallel pulls (a base to compare with) has only _pull_one
        stages = self.STAGES if hasattr(runner, "_pull_all") else ("_pull_one", *self.STAGES[1:])
        for name in stages:
            label = name.strip("_").replace("_all", "").replace("_one", "")
            setattr(runner, name, self._wrap(label, getattr(runner, name)))
        make_engine = runner._engine

        def engine(run_id: int) -> Any:
            eng = make_engine(run_id)
            eng.push = self._wrap("push", eng.push)
            return eng

        runner._engine = engine

    def _wrap(self, label: str, fn: Callable[..., T]) -> Callable[..., T]:
        def timed_stage(*args: Any, **kwargs: Any) -> T:
            start, cpu, peak = time.perf_counter(), time.process_time(), peak_rss_mb()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
                self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu
                self.rss_rise[label] = self.rss_rise.get(label, 0.0) + peak_rss_mb() - peak

        return timed_stage

    def take(self) -> dict[str, Any]:
        """Per stage since the last call: seconds, CPU seconds and the peak-RSS rise; then
        start again."""
        out = {k: {"seconds": round(v, 2), "cpu_seconds": round(self.cpu.get(k, 0.0), 2),
                   "peak_rss_rise_mb": round(self.rss_rise.get(k, 0.0), 1)}
               for k, v in sorted(self.seconds.items())}
        self.seconds.clear()
        self.cpu.clear()
        self.rss_rise.clear()
        return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024, 1)


def profile_summary(prof: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    out.write("== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    out.write("== by own time ==\n")
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)
    return out.getvalue()


def store_size_mb(db_url: str) -> float | None:
    """The store's size on disk (SQLite file) or in the cluster (PostgreSQL database)."""
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        return round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20, 1)
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            return round(int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one()) / 2**20, 1)
    finally:
        engine.dispose()


def fresh_postgres(base_url: str) -> str:
    """A new, empty database on the cluster at ``base_url`` (one per benchmark run)."""
    from sqlalchemy import create_engine, text

    name = f"revsync_bench_{int(time.time() * 1000)}"
    engine = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


def cycle_summary(report: Any, seconds: float, calls: dict[str, int], floor_s: float | None) -> dict[str, Any]:
    """One cycle's figures: time, its ratio to the plain-read floor, what it read and mapped."""
    pulled = sum(report.pulled.values())
    return {
        "seconds": seconds,
        "floor_ratio": round(seconds / floor_s, 2) if floor_s else None,
        "records_per_s": round(pulled / seconds, 1) if seconds else None,
        "pulled": report.pulled,
        "mapped": dict(getattr(report, "mapped", {}) or {}),
        "api_calls": calls,
        "written": report.written,
        "failed": report.failed,
        "status": report.status,
    }


def run(
    accounts: int, seed: int, profile: Path | None = None, out: Path = OUT, noise: str | None = None,
    *, postgres: str | None = None, gap: float = 60.0,
) -> dict[str, Any]:
    """Generate (or reuse) data, serve it; the plain-read floor, then three cycles:
    1 (full sync), 2 (reads its own writes back: the echo), 3 (nothing changed). Cycle 2
    starts ``gap`` seconds after cycle 1 ends: a read less than the look-back window after
    a write cannot rule out late commits before it, so only a read that late lets the
    next cycle start at the newest modstamp (sync/pull.py, ``Puller.pull``)."""
    sys.path.insert(0, str(ROOT))
    from bench.floor import read_plan, run_floor
    from cli import make_runner, sandbox_settings
    from sync.migrate import upgrade

    data = data_dir(accounts, seed, out, noise=noise)
    work = Path(tempfile.mkdtemp(prefix="revsync-bench-"))
    try:
        db_url = fresh_postgres(postgres) if postgres else f"sqlite:///{work / 'bench.db'}"
        started = time.perf_counter()
        with sandbox_process(data, work / "ca") as info:
            load_s = round(time.perf_counter() - started, 3)
            upgrade(db_url)
            runner = make_runner(sandbox_settings(info, db_url))
            clock = StageClock(runner)
            plan = read_plan(runner.connections)
            floor_1 = run_floor(info, plan, work / "floor-1.db")
            stats = SandboxStats(info)
            stats.reset()
            prof = cProfile.Profile() if profile else None
            if prof:
                prof.enable()
            cpu = CpuClock()
            first, seconds = timed(lambda: runner.run_cycle(force=True))
            cpu_1 = cpu.take()
            if prof:
                prof.disable()
                profile.write_text(profile_summary(prof), encoding="utf-8")  # type: ignore[union-attr]
                prof.dump_stats(str(profile) + ".pstats")  # type: ignore[operator]
            stages_1 = clock.take()
            calls_1 = stats.calls()
            first_ended = time.perf_counter()
            floor_2 = run_floor(info, plan, work / "floor-2.db")
            time.sleep(max(0.0, gap - (time.perf_counter() - first_ended)))
            stats.reset()
            cpu.take()
            second, seconds_2 = timed(runner.run_cycle)
            cpu_2 = cpu.take()
            stages_2 = clock.take()
            calls_2 = stats.calls()
            stats.reset()
            third, seconds_3 = timed(runner.run_cycle)
            cpu_3 = cpu.take()
            stages_3 = clock.take()
            calls_3 = stats.calls()
        records = sum(first.pulled.values())
        return {
            "accounts": accounts,
            "seed": seed,
            "noise": noise,
            "database": "postgresql" if postgres else "sqlite",
            "records": records,
            "seconds": seconds,
            "records_per_s": round(records / seconds, 1) if seconds else None,
            "peak_rss_mb": peak_rss_mb(),
            "store_mb": store_size_mb(db_url),
            "api_calls": calls_1,
            "status": first.status,
            "written": first.written,
            "failed": first.failed,
            "entities": first.entities,
            "sandbox_start_seconds": load_s,
            "floor": floor_1,
            "floor_after_sync": floor_2,
            "cycles": {
                "1": {**cycle_summary(first, seconds, calls_1, floor_1["seconds"]), "stages": stages_1, "cpu_seconds": cpu_1},
                "2": {**cycle_summary(second, seconds_2, calls_2, floor_2["seconds"]), "stages": stages_2, "cpu_seconds": cpu_2},
                "3": {**cycle_summary(third, seconds_3, calls_3, floor_2["seconds"]), "stages": stages_3, "cpu_seconds": cpu_3},
            },
            "load_avg": list(os.getloadavg()),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--accounts", type=int, required=True, help="real companies in the seed data")
    parser.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile summary of cycle 1 here")
    parser.add_argument("--noise", default=None, choices=("classic", "real"), help="generator noise profile: classic or real (default classic)")
    parser.add_argument("--postgres", action="store_true",
                        help="store in a new database on the cluster at $REVSYNC_TEST_POSTGRES_URL "
                             "(scripts/with-postgres starts one)")
    parser.add_argument("--gap", type=float, default=60.0,
                        help="seconds from cycle 1's end to cycle 2's start (default 60: the look-back window)")
    args = parser.parse_args(argv)
    if args.accounts < 1:
        parser.error("--accounts must be at least 1")
    pg = os.environ.get("REVSYNC_TEST_POSTGRES_URL") if args.postgres else None
    if args.postgres and not pg:
        parser.error("--postgres needs REVSYNC_TEST_POSTGRES_URL (run under scripts/with-postgres)")
    result = run(args.accounts, args.seed, args.profile, noise=args.noise, postgres=pg, gap=args.gap)
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
