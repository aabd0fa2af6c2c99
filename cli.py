"""The ``revsync`` command (Typer + Rich)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from sync import config as cfg


class _Group(TyperGroup):
    """The top-level command group: an error from a connector or the config that reaches
    this far is one ``error:`` line and exit 2, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        from connectors.base import ConnectorError

        try:
            return super().invoke(ctx)
        except (ConnectorError, cfg.ConfigError) as e:
            _error_line(str(e) or type(e).__name__)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    name="revsync",
    help="Keep Salesforce, HubSpot and Planhat in agreement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger("revsync")


def _flag_help_without_type() -> None:
    """Typer's help shows ``<bool>`` beside on/off flags (``--verbose -v <bool>``), which
    reads as if the flag took a value: show no type for flags. Checked by a CLI test."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flag_help_without_type()


class State:
    config_path: Path | None = None


#: exit code of a run that did nothing because another run holds every scope
EXIT_SKIPPED = 3


def _error_line(message: str) -> None:
    """``error: …`` on stderr as ONE line, however long (never wrapped, markup-safe)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(' '.join(message.split()))}", highlight=False,
                      soft_wrap=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _error_line(message)
    return typer.Exit(code)


def load_settings(*, resolve_secrets: bool = True) -> cfg.Settings:
    """Load revsync.toml (or --config), turning a bad file into one clear message."""
    try:
        settings = cfg.load(State.config_path, resolve_secrets=resolve_secrets)
    except cfg.ConfigError as e:
        raise _fail(str(e)) from None
    cfg.install_redactor(settings)
    from mapping import definitions

    definitions.activate(settings.definitions or definitions.defaults())  # the command reads and writes under them
    return settings


def print_json(data: Any) -> None:
    """One JSON document on stdout (for scripts)."""
    sys.stdout.write(json.dumps(data, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


@app.callback()
def _main(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Path to revsync.toml (default: $REVSYNC_CONFIG or ./revsync.toml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
    log_format: Annotated[str, typer.Option("--log-format", help="text, or json: one JSON object a line with run id, system, object and phase.")] = "text",
) -> None:
    from sync import logs

    State.config_path = config
    if log_format not in ("text", "json"):
        raise _fail(f"--log-format: {log_format!r} is not text or json")
    logs.setup(logging.INFO if verbose else logging.WARNING, log_format, sys.stderr)


@app.command()
def init(
    path: Annotated[Path, typer.Option("--path", help="Where to write the file.")] = cfg.DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a commented starter revsync.toml that points at the local sandbox."""
    if path.exists() and not force:
        raise _fail(f"{path} already exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cfg.STARTER, encoding="utf-8")
    if as_json:
        print_json({"written": str(path)})
    else:
        console.print(f"wrote [bold]{path}[/]; next: [bold]revsync db upgrade[/]")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create or migrate the store's schema (Alembic)."""
    from sync.migrate import upgrade
    from sync.store import Store

    settings = load_settings(resolve_secrets=False)
    try:
        upgrade(settings.database_url, revision)
    except Exception as e:  # a database that cannot be reached or migrated
        raise _fail(f"database {cfg.redact_url(settings.database_url)}: {e}") from None
    rev = Store.from_url(settings.database_url).schema_revision()
    if as_json:
        print_json({"database": cfg.redact_url(settings.database_url), "revision": rev})
    else:
        console.print(f"database [bold]{cfg.redact_url(settings.database_url)}[/] is at revision [bold]{rev}[/]")


def collect_status(settings: cfg.Settings) -> dict[str, Any]:
    """Everything `revsync status` shows, as plain data."""
    from sync.migrate import head_revision
    from sync.store import Store

    store = Store.from_url(settings.database_url)
    rev = store.schema_revision()
    data: dict[str, Any] = {
        "config": str(settings.path) if settings.path else None,
        "database": cfg.redact_url(settings.database_url),
        "schema_revision": rev,
        "schema_head": head_revision(),
        "connections": [
            {
                "name": c.name,
                "kind": c.kind,
                "secrets_set": sorted(c.secrets),
                "secrets_missing": sorted(
                    set(settings_secret_names(settings, c.name)) - set(c.secrets)
                ),
            }
            for c in settings.connections.values()
        ],
    }
    if rev is not None:
        data.update(store.status())
    if settings.fleet.enabled:
        from sync.fleet import shared_budget_figures

        data["fleet"] = {"broker": cfg.redact_url(settings.fleet.broker_url)}
        try:
            data["api_budget_shared"] = shared_budget_figures(settings)
        except Exception as e:  # the broker is down: say so, show the rest
            data["api_budget_shared"] = {"error": f"{type(e).__name__}: {e}"}
    return data


def settings_secret_names(settings: cfg.Settings, name: str) -> list[str]:
    """The secret keys a connection declares (from the file, without values)."""
    if settings.path is None:
        return []
    import tomllib

    raw = tomllib.loads(settings.path.read_text(encoding="utf-8"))
    return list(raw.get("connections", {}).get(name, {}).get("secrets", {}))


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Schema, connections, cursors, last runs, outbox, open errors and API usage."""
    settings = load_settings()
    if settings.fleet.enabled:  # the shared figures live in the fleet's Redis
        from sync.budget import BrokerUnreachable, check_reachable

        try:
            check_reachable(settings.fleet.broker_url)
        except BrokerUnreachable as e:
            raise _fail(str(e)) from None
    try:
        data = collect_status(settings)
    except Exception as e:
        raise _fail(f"database {cfg.redact_url(settings.database_url)}: {e}") from None
    if as_json:
        print_json(data)
        return
    console.print(f"config    {data['config'] or '(none: defaults)'}")
    console.print(f"database  {data['database']}")
    rev = data["schema_revision"]
    if rev is None:
        console.print("schema    [yellow]not created[/] (run `revsync db upgrade`)")
    else:
        behind = "" if rev == data["schema_head"] else f" [yellow](head is {data['schema_head']})[/]"
        console.print(f"schema    {rev}{behind}")
    if data["connections"]:
        t = Table(title="connections")
        for col in ("name", "kind", "secrets set", "secrets missing"):
            t.add_column(col)
        for c in data["connections"]:
            t.add_row(c["name"], c["kind"], ", ".join(c["secrets_set"]) or "-",
                      ", ".join(c["secrets_missing"]) or "-")
        console.print(t)
    if rev is None:
        return
    console.print("entities  " + ", ".join(f"{k}: {v}" for k, v in data["entities"].items()))
    if data["cursors"]:
        t = Table(title="cursors")
        for col in ("system", "object", "modstamp", "records seen"):
            t.add_column(col)
        for c in data["cursors"]:
            t.add_row(c["system"], c["object"], c["modstamp"] or "-", str(c["records_seen"]))
        console.print(t)
    if data["last_runs"]:
        t = Table(title="last runs")
        for col in ("id", "kind", "status", "started", "finished", "systems"):
            t.add_column(col)
        for r in data["last_runs"]:
            counts = r.get("counts") or {}
            down = [f"{n} failed" for n in counts.get("failed_systems") or {}]
            down += [f"{n} deferred" for n in counts.get("deferred_systems") or {}]
            t.add_row(str(r["id"]), r["kind"], r["status"], r["started_at"], r["finished_at"] or "-",
                      ", ".join(down) or "-")
        console.print(t)
    console.print("outbox    " + (", ".join(f"{k}: {v}" for k, v in data["outbox"].items()) or "empty"))
    console.print("errors    " + (", ".join(f"{k}: {v}" for k, v in data["errors_open"].items()) or "none open"))
    if data["api_usage"]:
        t = Table(title="API usage")
        for col in ("system", "day", "calls", "limit", "remaining"):
            t.add_column(col)
        for u in data["api_usage"]:
            t.add_row(u["system"], u["day"], str(u["calls"]), str(u["limit"] or "-"), str(u["remaining"] or "-"))
        console.print(t)
    shared = data.get("api_budget_shared")
    if shared is not None:
        console.print(f"fleet     broker {data['fleet']['broker']}")
        if "error" in shared:
            console.print(f"[yellow]shared API budget unavailable:[/] {shared['error']}")
        else:
            t = Table(title="API budget, shared by every worker (today, UTC)")
            for col in ("system", "day", "calls", "calls/day", "remaining", "calls/s"):
                t.add_column(col)
            for system, b in shared.items():
                t.add_row(system, b["day"], str(b["calls"]), str(b["calls_per_day"] or "-"),
                          "-" if b["remaining"] is None else str(b["remaining"]), str(b["calls_per_second"] or "-"))
            console.print(t)


# --------------------------------------------------------------------------- sync commands

OBJECT_NAMES = ("account", "contact", "opportunity")


def _objects(objects: list[str] | None) -> list[Any] | None:
    from mapping.canonical import ObjectType

    if not objects:
        return None
    bad = [o for o in objects if o not in OBJECT_NAMES]
    if bad:
        raise _fail(f"--object: unknown object {bad[0]!r} (use {', '.join(OBJECT_NAMES)})")
    return [ObjectType(o) for o in objects]


def _parse_date(value: str | None, option: str) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"{option}: {value!r} is not a date (use YYYY-MM-DD or ISO-8601)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def make_runner(settings: cfg.Settings, *, systems: list[str] | None = None, progress: Any = None) -> Any:
    """A Runner with the configured connectors (credentials checked, errors made readable)."""
    from connectors.base import ApiBudget, ConnectorError, UnknownConnectorError
    from sync.jobs import Runner, build_connections, system_problem
    from sync.store import Store

    if systems:
        unknown = [x for x in systems if x not in settings.connections]
        if unknown:
            raise _fail(f"--system: no connection named {unknown[0]!r} in the config "
                        f"(have: {', '.join(settings.connections) or 'none'})")
    if not settings.connections:
        raise _fail("no connections configured (run `revsync init`, or see the README)")
    budget: ApiBudget
    if settings.fleet.enabled:
        # a fleet's workers share one allocation in Redis: a CLI run spends from it too,
        # so without Redis it cannot count its calls and does not start
        from sync.budget import BrokerUnreachable, SharedBudget, budget_limits, check_reachable

        try:
            check_reachable(settings.fleet.broker_url)
        except BrokerUnreachable as e:
            raise _fail(str(e)) from None
        budget = SharedBudget(settings.fleet.broker_url, budget_limits(settings.connections))
    else:
        budget = ApiBudget({n: c.options["budget"]["calls_per_day"] for n, c in settings.connections.items()
                            if isinstance(c.options.get("budget"), dict) and c.options["budget"].get("calls_per_day")})
    store = Store.from_url(settings.database_url)
    if store.schema_revision() is None:
        raise _fail(f"database {cfg.redact_url(settings.database_url)} has no schema (run `revsync db upgrade`)")
    # a connection that cannot be built (credentials refused, host unreachable, CA
    # bundle missing) is reported by the run, one line, while the others go on
    failures: dict[str, ConnectorError] = {}
    try:
        conns = build_connections(settings, budget=budget, only=systems or None, failures=failures)
    except UnknownConnectorError as e:
        raise _fail(str(e)) from None
    if failures and not conns:
        for name, exc in failures.items():
            _error_line(system_problem(name, exc)[1])
        raise typer.Exit(2)
    return Runner(store, conns, settings, budget=budget, progress=progress, unavailable=failures)


def _exit_for_systems(report: Any) -> None:
    """One line per system that failed (auth/config) or could not be reached; exit 2."""
    lines = [*report.failed_systems.values(), *report.deferred_systems.values()]
    for line in lines:
        _error_line(line)
    if lines:
        raise typer.Exit(2)


class _Bars:
    """Rich progress bars on stderr, one per stage (off with --json or when not a TTY)."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=err_console,
                                 transient=True, disable=not enabled)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def __call__(self, label: str, n: int) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.progress.add_task(label, total=None)
        self.progress.advance(self.tasks[label], n)


def _print_report(report: Any, title: str) -> None:
    d = report.as_dict()
    t = Table(title=f"{title} (run {d['run_id']}, {d['status']}, {d['seconds']} s)")
    t.add_column("system")
    t.add_column("pulled", justify="right")
    t.add_column("written", justify="right")
    t.add_column("failed", justify="right")
    t.add_column("planned")
    t.add_column("API calls", justify="right")
    systems = sorted(set(d["pulled"]) | set(d["written"]) | set(d["planned"]) | set(d["api_calls"]))
    for sname in systems:
        planned = ", ".join(f"{k} {v}" for k, v in sorted(d["planned"].get(sname, {}).items())) or "-"
        t.add_row(sname, str(d["pulled"].get(sname, 0)), str(d["written"].get(sname, 0)),
                  str(d["failed"].get(sname, 0)), planned, str(d["api_calls"].get(sname, 0)))
    console.print(t)
    console.print("entities  " + ", ".join(f"{k}: {v}" for k, v in d["entities"].items()))
    console.print(f"links made {d['links']} by key, {d['matched_links']} by the matcher"
                  + (f", {d['remote_merges']} following merges made in the systems" if d.get("remote_merges") else "")
                  + f" ({d['review_queued']} pairs queued for review); new entities {d['new_entities']}, "
                  f"conflicts decided {d['conflicts']}, deletes flagged {d['deleted']}, errors {d['errors']}")
    down = set(d.get("failed_systems", {}).values()) | set(d.get("deferred_systems", {}).values())
    for m in d["skipped"] + d["messages"]:
        if m not in down:  # those get their own error line on stderr
            console.print(f"[yellow]note:[/] {m}", highlight=False)


@app.command()
def sync(
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only this connection (repeatable).")] = None,
    obj: Annotated[list[str] | None, typer.Option("--object", "-o", help="Only this object (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pull and plan, write nothing (see `revsync plan`).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Go ahead even if the plan is over a blast-radius cap.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as one JSON object.")] = False,
) -> None:
    """Run one sync cycle: pull, reconcile, plan, push."""
    settings = load_settings()
    objects = _objects(obj)
    with _Bars(enabled=not as_json and err_console.is_terminal) as bars:
        runner = make_runner(settings, systems=system, progress=bars)
        if not dry_run:
            _refuse_without_external_ids(runner.connections, settings)
        report = runner.run_cycle(systems=system or None, objects=objects, dry_run=dry_run, force=force)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report, "dry run" if dry_run else "sync")
    _exit_for_systems(report)
    if report.status == "skipped":
        raise _fail("skipped: another run holds every scope's lease (" + "; ".join(report.skipped[:3])
                    + (", …" if len(report.skipped) > 3 else "") + "); nothing was pulled or written",
                    code=EXIT_SKIPPED)
    if report.status in ("stopped", "failed"):
        raise typer.Exit(1)


@app.command()
def backfill(
    system: Annotated[str, typer.Option("--system", "-s", help="The connection to re-pull.")],
    obj: Annotated[list[str] | None, typer.Option("--object", "-o", help="Only this object (repeatable).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Re-pull records modified at or after this date.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="…and at or before this date.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Go ahead even if the plan is over a cap.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as one JSON object.")] = False,
) -> None:
    """Re-pull a range from one system (the incremental cursor never moves backwards)."""
    settings = load_settings()
    start, end = _parse_date(since, "--since"), _parse_date(until, "--until")
    if start and end and end < start:
        raise _fail("--until is before --since")
    with _Bars(enabled=not as_json and err_console.is_terminal) as bars:
        runner = make_runner(settings, systems=[system], progress=bars)
        report = runner.run_backfill(system, objects=_objects(obj), since=start, until=end, force=force)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report, f"backfill {system}")
    _exit_for_systems(report)
    if report.status in ("stopped", "failed"):
        raise typer.Exit(1)


def _store(settings: cfg.Settings) -> Any:
    from sync.store import Store

    store = Store.from_url(settings.database_url)
    if store.schema_revision() is None:
        raise _fail(f"database {cfg.redact_url(settings.database_url)} has no schema (run `revsync db upgrade`)")
    return store


@app.command()
def plan(
    system: Annotated[str | None, typer.Option("--system", "-s", help="Only ops for this connection.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many ops.")] = 200,
    show_all: Annotated[bool, typer.Option("--all", help="Show every pending op (no --limit).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ops as JSON (all of them with --all).")] = False,
) -> None:
    """Pending field-level changes per system (entity, system, field: old → new, rule).

    On a terminal the plan is a table; in a pipe or a file it is plain tab-separated
    text, one change per line, never cut. The first column is the entity's short id:
    `revsync explain` takes it."""
    from sync import store as st
    from sync.governance import held_ops

    settings = load_settings()
    store = _store(settings)
    with store.session() as s:
        rows = [r for r in st.list_pending(s, limit=100_000) if system is None or r.system == system]
        held_rows = held_ops(s, system)
        held = [{"id": r.id, "entity": r.canonical_id, "object": r.object_type, "system": r.system,
                 "native": r.native_type, "kind": r.kind, "remote_id": r.remote_id, "reason": r.last_error,
                 "fields": sorted((r.payload or {}).get("fields", {}))} for r in held_rows]
        ops = [{"id": r.id, "entity": r.canonical_id, "object": r.object_type, "system": r.system,
                "native": r.native_type, "kind": r.kind, "remote_id": r.remote_id,
                "changes": [{"field": c[0], "old": c[1], "new": c[2], "rule": c[3]}
                            for c in (r.payload or {}).get("changes", [])],
                "associations": (r.payload or {}).get("associations", {}),
                "fields": (r.payload or {}).get("fields", {}),
                **({"merge_from": (r.payload or {}).get("merge_from", []),
                    "merge_ids": (r.payload or {}).get("merge_ids", [])} if r.kind == "merge" else {})}
               for r in rows]
    if limit < 1 and not show_all:
        raise _fail("--limit must be at least 1 (or use --all)")
    shown_ops = ops if show_all else ops[:limit]
    if as_json:
        print_json({"pending": len(ops), "shown": len(shown_ops), "ops": shown_ops, "held": held})
        return
    if held:
        _print_held(held)
    if not ops:
        console.print("nothing pending: the systems agree with the canonical store"
                      + (f" (but {len(held)} write(s) held, above)" if held else ""))
        return
    lines: list[tuple[str, str, str, str, str, str]] = []
    for op in shown_ops:
        if op["kind"] == "merge":
            changes = [{"field": f"(records {', '.join(op['merge_from'])})", "old": None,
                        "new": f"merged into {op['remote_id']}",
                        "rule": "merge ledger " + ", ".join(str(i) for i in op["merge_ids"])}]
        else:
            changes = op["changes"] or _unlisted_writes(op)
        lines.extend((f"{op['object']} {op['entity'][:8]}", str(op["system"]), str(op["kind"]), str(c["field"]),
                      f"{c['old']!s} → {c['new']!s}", c["rule"] or "-") for c in changes)
    header = ("entity", "system", "kind", "field", "old → new", "rule")
    shown = (f"{len(ops)} pending op(s)" if len(shown_ops) == len(ops)
             else f"{len(ops)} pending op(s), {len(shown_ops)} shown")
    if console.is_terminal:
        t = Table(title=shown)
        for col in header:
            t.add_column(col, overflow="fold")
        for line in lines:
            t.add_row(*line)
        console.print(t)
    else:
        # a pipe or a file: plain text, full width, nothing cut
        sys.stdout.write("# " + shown + "\n" + "\t".join(header) + "\n")
        sys.stdout.writelines("\t".join(x.replace("\t", " ").replace("\n", " ") for x in line) + "\n"
                              for line in lines)
        sys.stdout.flush()
    if len(shown_ops) < len(ops):
        err_console.print(f"showing {len(shown_ops)} of {len(ops)} pending ops: --all shows every one, "
                          "--limit N more or fewer, --json prints them for scripts", highlight=False)


def _print_held(held: list[dict[str, Any]]) -> None:
    """Ops held by governance (required fields, schema pre-flight), with the reason."""
    title = f"{len(held)} held op(s): not written until the reason is gone"
    if console.is_terminal:
        t = Table(title=title)
        for col in ("entity", "system", "kind", "held because"):
            t.add_column(col, overflow="fold")
        for h in held:
            t.add_row(f"{h['object']} {h['entity'][:8]}", h["system"], h["kind"], h["reason"] or "-")
        console.print(t)
    else:
        sys.stdout.write(f"# {title}\n")
        sys.stdout.writelines(f"{h['object']} {h['entity'][:8]}\t{h['system']}\theld {h['kind']}\t"
                              f"{(h['reason'] or '-').replace(chr(9), ' ')}\n" for h in held)
        sys.stdout.flush()


@app.command()
def handoffs(
    state: Annotated[str | None, typer.Option("--state", help="Only 'waiting' or 'complete' handoffs.")] = "waiting",
    show_all: Annotated[bool, typer.Option("--all", help="Every handoff, complete ones too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Closed-won handoffs to customer success: the waiting ones (by default) with the
    data they miss and who owns each gap; `--all` adds the complete ones with the time
    they took."""
    from sync.handoff import handoff_summary, list_handoffs

    if state not in (None, "waiting", "complete"):
        raise _fail(f"--state must be 'waiting' or 'complete' (got {state!r})")
    settings = load_settings(resolve_secrets=False)
    store = _store(settings)
    with store.session() as s:
        rows = list_handoffs(s, None if show_all else state)
        summary = handoff_summary(s)
    if as_json:
        print_json({"summary": summary, "handoffs": rows})
        return
    console.print(f"handoffs: {summary['completed']} complete, {summary['waiting']} waiting", highlight=False)
    if not rows:
        return
    t = Table(title="closed-won handoffs")
    for col in ("account", "state", "missing (owner)", "completeness", "hours"):
        t.add_column(col, overflow="fold")
    for r in rows:
        gaps = ", ".join(f"{m} ({r['owners'].get(m, '-')})" for m in r["missing"]) or "-"
        t.add_row(f"{r['account_name'] or ''} {r['account'][:8]}", r["state"], gaps, f"{100 * r['completeness']:.0f}%",
                  "-" if r["hours_to_complete"] is None else f"{r['hours_to_complete']:.1f}")
    console.print(t)


@app.command()
def errors(
    category: Annotated[str | None, typer.Option("--category", help="Only this category (validation, duplicate, bad_value, …).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Open and parked entries of the error ledger: which record, which field, what went
    wrong, how many tries (a write parked after its last automatic try says so)."""
    from connectors.base import ErrorCategory
    from sync import store as st

    known = [c.value for c in ErrorCategory]
    if category is not None and category not in known:
        raise _fail(f"--category: unknown category {category!r} (one of: {', '.join(known)})")
    settings = load_settings()
    store = _store(settings)
    with store.session() as s:
        rows: list[dict[str, Any]] = [{"id": e.id, "system": e.system, "object": e.object_type, "native": e.native_type,
                 "remote_id": e.remote_id, "entity": e.canonical_id, "direction": e.direction,
                 "category": e.category, "field": e.field, "message": e.message, "attempts": e.attempts,
                 "first_seen": e.first_seen_at.isoformat(), "last_seen": e.last_seen_at.isoformat(),
                 "state": e.state,
                 "next_try": e.next_attempt_at.isoformat() if e.next_attempt_at else None,
                 **_bad_value_detail(e)}
                for e in st.list_errors(s, category=category, limit=limit)]
        _add_sources(s, rows)
    if as_json:
        print_json({"errors": rows})
        return
    if not rows:
        console.print("no open errors")
        return
    t = Table(title=f"{len(rows)} open error(s)")
    for col in ("id", "system", "record", "dir", "category", "field", "message", "tries"):
        t.add_column(col, overflow="fold" if col == "message" else "ellipsis")  # a raw value is never cut short
    for e in rows:
        record = (f"{e['native'] or e['object']} {e['remote_id']}" if e["remote_id"]
                  else f"{e['native'] or e['object']} (not created yet; from {e['source']})" if e.get("source")
                  else f"{e['native'] or e['object']} {e['entity'] or ''}")
        t.add_row(str(e["id"]), e["system"], record, e["direction"], e["category"], e["field"] or "-",
                  Text(e["message"]),
                  f"{e['attempts']} (parked)" if e["state"] == "parked" else str(e["attempts"]))
    console.print(t)


def _add_sources(s: Any, rows: list[dict[str, Any]]) -> None:
    """A failed create has no record in its own system yet: name the records it comes
    from (system, remote id, name) instead of the internal canonical id."""
    from sync import store as st

    want: dict[str, list[str]] = {}
    for e in rows:
        if not e["remote_id"] and e["entity"] and e["object"] in st.SEARCH_COLUMNS:
            want.setdefault(e["object"], []).append(e["entity"])
    for ot, ids in want.items():
        refs = st.refs_for_entities(s, ot, ids)
        for e in rows:
            if e["object"] != ot or e["remote_id"] or not e["entity"]:
                continue
            row = st.entity_row(s, ot, e["entity"])
            label = _entity_label(ot, row) if row is not None else None
            srcs = [f"{x.system}:{x.remote_id}" for x in refs.get(e["entity"], []) if x.remote_id]
            if srcs:
                e["source"] = ", ".join(srcs) + (f" {label!r}" if label else "")


def _bad_value_detail(e: Any) -> dict[str, Any]:
    """``raw`` and ``reason`` of a ``bad_value`` ledger entry (nothing for other entries)."""
    if e.category != "bad_value" or not isinstance(e.payload, dict):
        return {}
    return {"raw": e.payload.get("raw"), "reason": e.payload.get("reason")}


@app.command()
def retry(
    ids: Annotated[list[int] | None, typer.Option("--id", help="Error-ledger id to retry (repeatable).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every failed write.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON.")] = False,
) -> None:
    """Try failed writes again now (parked ones too): pull, plan them from the current state, push."""
    if not ids and not all_:
        raise _fail("say which: --id N (repeatable) or --all")
    settings = load_settings()
    runner = make_runner(settings)
    report = runner.run_retry(ids=ids or None)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report, "retry")


def _unlisted_writes(op: dict[str, Any]) -> list[dict[str, Any]]:
    """Lines for an op without field changes: the revsync id written into a record it
    links (identity lives in the systems), then its associations."""
    out: list[dict[str, Any]] = [{"field": f"{name} (revsync id)", "old": None, "new": value, "rule": "identity"}
                                 for name, value in (op.get("fields") or {}).items()]
    assoc = {k: v for k, v in (op.get("associations") or {}).items() if v}
    if assoc or not out:
        out.append({"field": "(associations)", "old": None, "new": assoc, "rule": None})
    return out


@app.command()
def explain(
    entity: Annotated[str, typer.Argument(
        help="A canonical id or its first characters (as `revsync plan` prints them), or SYSTEM:REMOTE_ID "
             "(e.g. salesforce:0015g0000lXFtYKAA1); `revsync find` looks one up by name, email or domain.")],
    field: Annotated[str | None, typer.Argument(help="Only this field.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Where each value of an entity came from, and which rule chose it."""
    from sync import store as st

    settings = load_settings()
    store = _store(settings)
    with store.session() as s:
        try:
            found = st.find_entity(s, entity)
        except st.AmbiguousEntity as e:
            raise _fail(str(e)) from None
        if found is None:
            raise _fail(f"no entity {entity!r} (give a canonical id, its first characters or SYSTEM:REMOTE_ID; "
                        "`revsync find TEXT` searches by name, email, domain or remote id)")
        object_type, cid = found
        prov = [p for p in st.provenance(s, object_type, cid) if field is None or p.field == field]
        refs = st.refs_for_entities(s, object_type, [cid]).get(cid, [])
        data: dict[str, Any] = {
            "entity": cid, "object": object_type,
            "records": [{"system": r.system, "native": r.native_type, "remote_id": r.remote_id,
                         "linked_by": r.link_rule, "deleted": r.deleted_at is not None,
                         "modstamp": r.remote_modstamp.isoformat() if r.remote_modstamp else None} for r in refs],
            "fields": [{"field": p.field, "value": p.value, "system": p.system, "remote_id": p.remote_id,
                        "rule": p.rule, "remote_modstamp": p.remote_modstamp.isoformat() if p.remote_modstamp else None,
                        "run": p.run_id, "decided_at": p.decided_at.isoformat()} for p in prov],
            # values a record holds that could not be read (no claim: never written, never a blank)
            "unreadable": [{"field": name, "native": u.get("field"), "system": r.system, "remote_id": r.remote_id,
                            "raw": u.get("raw"), "reason": u.get("reason")}
                           for r in refs for name, u in sorted(((r.canonical_fields or {}).get("_unreadable")
                                                                or {}).items())
                           if field is None or field in (name, u.get("field"))],
            # values read after removing characters (control characters, NUL)
            "cleaned": [{"field": name, "native": c.get("field"), "system": r.system, "remote_id": r.remote_id,
                         "raw": c.get("raw"), "note": c.get("note")}
                        for r in refs for name, c in sorted(((r.canonical_fields or {}).get("_cleaned")
                                                             or {}).items())
                        if field is None or field in (name, c.get("field"))],
        }
        if object_type == "account":
            from sync import hierarchy

            # the account hierarchy: root first, then each parent, then this account
            data["chain"] = hierarchy.chain_of(s, cid)
    if field is not None and not (data["fields"] or data["unreadable"] or data["cleaned"]):
        raise _fail(f"{object_type} {cid} has no decided value for {field!r}")
    if as_json:
        print_json(data)
        return
    console.print(f"[bold]{object_type} {cid}[/]")
    if len(data.get("chain") or []) > 1:
        console.print("  hierarchy: " + " > ".join(f"{c['name'] or '?'} ({c['id'][:8]})" for c in data["chain"]),
                      highlight=False)
    for r in data["records"]:
        console.print(f"  {r['system']} {r['native']} {r['remote_id']} (linked by {r['linked_by']}"
                      f"{', deleted' if r['deleted'] else ''})", highlight=False)
    t = Table()
    for col in ("field", "value", "from", "rule", "modstamp", "run"):
        t.add_column(col)
    for p in data["fields"]:
        t.add_row(p["field"], str(p["value"]), f"{p['system'] or '-'} {p['remote_id'] or ''}", p["rule"],
                  p["remote_modstamp"] or "-", str(p["run"]))
    console.print(t)
    if data["unreadable"]:
        u = Table(title="unreadable values (not used, never written elsewhere)")
        for col in ("field", "record", "native field", "raw value", "reason"):
            u.add_column(col)
        for b in data["unreadable"]:
            u.add_row(b["field"], f"{b['system']} {b['remote_id']}", b["native"] or "-",
                      Text(b["raw"] or ""), Text(b["reason"] or ""))
        console.print(u)
    if data["cleaned"]:
        c = Table(title="cleaned values (read after removing characters)")
        for col in ("field", "record", "native field", "raw value", "note"):
            c.add_column(col)
        for b in data["cleaned"]:
            c.add_row(b["field"], f"{b['system']} {b['remote_id']}", b["native"] or "-",
                      Text(b["raw"] or ""), Text(b["note"] or ""))
        console.print(c)


def _entity_label(object_type: str, row: Any) -> str:
    if object_type == "contact":
        name = " ".join(x for x in (row.first_name, row.last_name) if x)
        return f"{name} <{row.email}>" if row.email else name or "(no name)"
    if object_type == "account":
        return " ".join(x for x in (row.name, f"({row.domain})" if row.domain else None) if x) or "(no name)"
    return row.name or "(no name)"


@app.command()
def find(
    text: Annotated[str, typer.Argument(help="Part of a name, an email, a domain, or a remote record id.")],
    obj: Annotated[str | None, typer.Option("--object", "-o", help="Only account, contact or opportunity.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Find entities by name, email, domain or remote id (then `revsync explain ID`)."""
    from sync import store as st

    if obj is not None and obj not in st.SEARCH_COLUMNS:
        raise _fail(f"--object: {obj!r} is not one of {', '.join(st.SEARCH_COLUMNS)}")
    if not text.strip():
        raise _fail("give some text to look for (a name, an email, a domain or a remote id)")
    settings = load_settings()
    store = _store(settings)
    with store.session() as s:
        hits = st.search_entities(s, text, object_types=[obj] if obj else None, limit=limit)
        refs = {ot: st.refs_for_entities(s, ot, [r.id for o, r in hits if o == ot]) for ot in {o for o, _ in hits}}
        found = [{"entity": row.id, "object": ot, "label": _entity_label(ot, row),
                  "records": [f"{x.system}:{x.remote_id}" for x in refs[ot].get(row.id, []) if x.remote_id]}
                 for ot, row in hits]
    if as_json:
        print_json({"query": text, "found": found})
        return
    if not found:
        console.print(f"nothing matches {text!r}", highlight=False)
        return
    t = Table(title=f"{len(found)} match(es) for {text!r}" + (" (limit reached)" if len(found) >= limit else ""))
    for col in ("id", "object", "name", "records"):
        t.add_column(col, overflow="fold")
    for f in found:
        t.add_row(f["entity"][:8], f["object"], f["label"], ", ".join(f["records"]))
    console.print(t)


@app.command()
def definitions(
    value_set: Annotated[str | None, typer.Argument(help="Only this value set (stage, industry, …).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the definitions as one JSON object.")] = False,
) -> None:
    """The shared definitions in force: per value set, the canonical values and each
    system's value written for each (and the native values read as each), with what
    revsync.toml's [definitions] renamed and retired."""
    from mapping.definitions import defaults

    settings = load_settings()
    defs = settings.definitions or defaults()
    data = defs.summary()
    if value_set is not None:
        if value_set not in data:
            raise _fail(f"unknown value set {value_set!r} (known: {', '.join(data)})")
        data = {value_set: data[value_set]}
    if as_json:
        print_json(data)
        return
    for name, d in data.items():
        systems = sorted({sy for row in d["values"].values() for sy in row})
        t = Table(title=f"{name}" + (f" (renamed: {', '.join(f'{a} → {b}' for a, b in d['renamed'].items())})"
                                     if d["renamed"] else "")
                  + (f" (retired: {', '.join(d['retired'])})" if d["retired"] else ""))
        t.add_column("canonical")
        for sy in systems:
            t.add_column(f"{sy} (written; also read)")
        for canonical, row in d["values"].items():
            cells = []
            for sy in systems:
                extra = sorted(n for n, c in d["reads"].get(sy, {}).items()
                               if c == canonical and n != (row.get(sy) or "").casefold())
                cells.append((row.get(sy) or "-") + (f"; {', '.join(extra)}" if extra else ""))
            t.add_row(canonical, *cells)
        console.print(t)


@app.command()
def quality(
    stale_days: Annotated[int | None, typer.Option("--stale-days", help="A record not modified for this many days is stale (default: [quality] stale_days or 90).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Data quality per system and object (completeness, duplicates, conflicts, stale
    records, unreadable values, errors) and the revenue view beside each system's own."""
    from sync.jobs import utcnow
    from sync.quality import quality_report

    if stale_days is not None and stale_days < 1:
        raise _fail("--stale-days must be at least 1")
    settings = load_settings(resolve_secrets=False)
    store = _store(settings)
    with store.session() as s:
        data = quality_report(s, now=utcnow(), config=settings.quality, stale_days=stale_days,
                              governance=settings.governance)
    if as_json:
        print_json(data)
        return
    from sync.quality import print_quality

    print_quality(console, data)


@app.command()
def web(
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8450,
    audit_log: Annotated[Path | None, typer.Option("--audit-log", help="JSON-lines audit file (default: .revsync/web-audit.jsonl).")] = None,
    session_minutes: Annotated[int, typer.Option("--session-minutes", help="A login expires after this many minutes.")] = 480,
    hash_password: Annotated[bool, typer.Option("--hash-password", help="Read a password on stdin, print its hash for REVSYNC_WEB_PASSWORD_HASH, exit.")] = False,
) -> None:
    """The sync-health console: runs, errors, review queue, plan, explain, quality; /metrics.

    Log in with REVSYNC_WEB_PASSWORD or REVSYNC_WEB_PASSWORD_HASH (environment or the
    secrets file); the user is REVSYNC_WEB_USER (default admin)."""
    from web.auth import AuthConfigError
    from web.auth import hash_password as make_hash

    if hash_password:
        pw = sys.stdin.readline().rstrip("\n")
        if not pw:
            raise _fail("give the password on stdin")
        sys.stdout.write(make_hash(pw) + "\n")
        return
    if session_minutes < 1:
        raise _fail("--session-minutes must be at least 1")
    settings = load_settings(resolve_secrets=False)
    store = _store(settings)
    try:
        app_ = _web_app(settings, store, audit_log, session_minutes)
    except AuthConfigError as e:
        raise _fail(str(e)) from None
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]warning:[/] serving on {host}: put it behind TLS", highlight=False)
    console.print(f"revsync console on http://{host}:{port}/ (metrics at /metrics)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


def _web_app(settings: cfg.Settings, store: Any, audit_log: Path | None, session_minutes: int) -> Any:
    """The console's ASGI app for these settings (credentials from env or the secrets file)."""
    from web.app import Console, create_app
    from web.auth import AuditLog, load_credentials

    file_secrets: dict[str, str] = {}
    secrets_path = settings.secrets_file
    if secrets_path is not None and secrets_path.exists():
        import tomllib

        raw = tomllib.loads(secrets_path.read_text(encoding="utf-8"))
        file_secrets = {k: v for k, v in raw.items() if isinstance(v, str)}
    creds = load_credentials(file_secrets)
    try:
        full = cfg.load(State.config_path, resolve_secrets=True)
        secret_values = full.secret_values()
    except Exception:  # connection secrets not set: nothing of theirs to hide either
        secret_values = []
    console_ = Console(store=store, credentials=creds,
                       audit=AuditLog(audit_log or Path(".revsync") / "web-audit.jsonl"),
                       dedupe=settings.dedupe, policies=settings.policies, quality_config=settings.quality,
                       definitions=settings.definitions,
                       secrets=sorted({v for v in (*secret_values, *file_secrets.values()) if len(v) >= 4},
                                      key=len, reverse=True))
    console_.refresh_quality()
    return create_app(console_, session_seconds=session_minutes * 60)


@app.command()
def serve(
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port (127.0.0.1).")] = None,
) -> None:
    """Run the scheduler in the foreground (cycle, nightly sweep, retries) until SIGTERM."""
    import scheduler

    settings = load_settings()
    store = _store(settings)
    if not settings.connections:
        raise _fail("no connections configured")
    _refuse_without_external_ids(make_runner(settings).connections, settings)
    if metrics_port is not None:
        from sync.metrics import serve_metrics

        try:
            serve_metrics(store, metrics_port)
        except OSError as e:
            raise _fail(f"--metrics-port {metrics_port}: {e.strerror or e}") from None
        console.print(f"metrics on http://127.0.0.1:{metrics_port}/metrics")
    if settings.fleet.enabled:
        console.print(f"fleet mode: jobs are enqueued to {cfg.redact_url(settings.fleet.broker_url)} "
                      "(run `revsync worker` to run them); this instance acts while it holds the leader lease")
    console.print(f"revsync scheduler: cycle every {settings.schedule.cycle_minutes} min, "
                  f"sweep '{settings.schedule.sweep_cron}', retries every {settings.schedule.retry_minutes} min")
    scheduler.serve(settings, config_path=str(settings.path) if settings.path else None)


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1, help="Worker processes (default: 2).")] = 2,
    queue: Annotated[list[str] | None, typer.Option("--queue", "-Q", help="Only this queue: a connection's name, or 'default' (repeatable; default: all).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Celery node name (default: revsync-<pid>@<host>).")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level.")] = "INFO",
) -> None:
    """Run a fleet worker (Celery) for the tasks `revsync serve` enqueues (needs [fleet] broker_url)."""
    import os

    settings = load_settings()
    if not settings.fleet.enabled:
        raise _fail("no broker configured: set [fleet] broker_url in the config or REVSYNC_BROKER_URL "
                    "(without one, `revsync serve` runs the jobs itself)")
    _store(settings)
    if queue:
        unknown = [q for q in queue if q not in ("default", "revsync") and q not in settings.connections]
        if unknown:
            raise _fail(f"--queue: no connection named {unknown[0]!r} (have: "
                        f"{', '.join(settings.connections) or 'none'}, or 'default')")
    from sync import tasks

    if settings.path is not None:  # the pool processes load the same file
        os.environ[cfg.CONFIG_ENV] = str(settings.path.absolute())
    app_ = tasks.configure(settings)
    queues = tasks.worker_queues(settings, queue)
    console.print(f"revsync worker: {concurrency} process(es), queues {', '.join(queues)}, "
                  f"broker {cfg.redact_url(settings.fleet.broker_url)}")
    app_.worker_main(["worker", f"--concurrency={concurrency}", f"--queues={','.join(queues)}",
                      f"--hostname={name or f'revsync-{os.getpid()}@%h'}", f"--loglevel={loglevel}",
                      "--without-gossip", "--without-mingle"])


# --------------------------------------------------------------------------- going live


def _refuse_without_external_ids(connections: Any, settings: cfg.Settings) -> None:
    """Stop before any write while a system lacks the external-id fields revsync upserts on."""
    from connectors.base import ConnectorError
    from sync.golive import external_id_gaps

    # a system that cannot be asked is left to the run: it ends that system's part
    # with one line (credentials refused, out of reach) while the others go on
    try:
        gaps = external_id_gaps(connections, settings, unchecked={})
    except ConnectorError as e:
        raise _fail(f"cannot check the external-id fields: {e}") from None
    if gaps:
        more = f", +{len(gaps) - 2} more" if len(gaps) > 2 else ""
        err_console.print(f"[bold red]error:[/] not writing: {len(gaps)} external-id field(s) missing "
                          f"({'; '.join(gaps[:2])}{more}); run `revsync setup` to see them, "
                          "`revsync setup --apply` to create them", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


_LEVEL = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


@app.command()
def check(
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only this connection (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as one JSON object.")] = False,
) -> None:
    """Check each connection before a sync: credentials, API version, access, external-id
    fields, API headroom. Exit 0 only when a sync can run (2 otherwise)."""
    from connectors.readiness import blocking
    from sync.golive import check as run_check

    settings = load_settings()
    _known_systems(settings, system)
    findings = run_check(settings, systems=system)
    stop = blocking(findings)
    fixable = [f for f in stop if f.fixable]
    if as_json:
        print_json({"ok": not stop, "findings": [f.as_dict() for f in findings]})
    else:
        for f in findings:
            console.print(f"{_LEVEL.get(f.level, f.level)} {f.connection}: {f.check}: {f.message}", highlight=False,
                          soft_wrap=True)
        if stop:
            console.print(f"{len(stop)} problem(s) stop a sync" + (
                f"; {len(fixable)} fixed by `revsync setup --apply`" if fixable else ""), highlight=False)
        else:
            console.print("ready: a sync can run (next: `revsync sync --dry-run`)", highlight=False)
    if stop:
        raise typer.Exit(2)


def _known_systems(settings: cfg.Settings, systems: list[str] | None) -> None:
    if not settings.connections:
        raise _fail("no connections configured (run `revsync init`, or see the README)")
    unknown = [x for x in systems or [] if x not in settings.connections]
    if unknown:
        raise _fail(f"--system: no connection named {unknown[0]!r} in the config "
                    f"(have: {', '.join(settings.connections)})")


@app.command()
def setup(
    apply: Annotated[bool, typer.Option("--apply", help="Create what is missing (otherwise only show it).")] = False,
    system: Annotated[list[str] | None, typer.Option("--system", "-s", help="Only this connection (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as one JSON object.")] = False,
) -> None:
    """Show (and with --apply create) the external-id fields revsync needs: Salesforce
    Revsync_Id__c with field access, HubSpot revsync_id; Planhat uses its sourceId.
    Idempotent: a second run changes nothing."""
    from sync.golive import setup as run_setup

    settings = load_settings()
    _known_systems(settings, system)
    changes, problems = run_setup(settings, apply=apply, systems=system)
    todo = [c for c in changes if c.state == "missing"]
    done = [c for c in changes if c.state == "created"]
    bad = [c for c in changes if c.state in ("failed", "manual")]
    if as_json:
        print_json({"applied": apply, "changes": [c.as_dict() for c in changes],
                    "problems": [p.as_dict() for p in problems]})
    else:
        for c in changes:
            console.print(c.line(), highlight=False, soft_wrap=True)
        for p in problems:
            console.print(f"[bold red]FAIL[/] {p.line()}", highlight=False, soft_wrap=True)
        if todo:
            console.print(f"{len(todo)} change(s) to make: run `revsync setup --apply`", highlight=False)
        elif done:
            console.print(f"{len(done)} change(s) made; next: `revsync check`", highlight=False)
        elif not bad and not problems:
            console.print("nothing to do: everything revsync needs exists", highlight=False)
    if problems or any(c.state == "failed" for c in bad):
        raise typer.Exit(2)


# --------------------------------------------------------------------------- dedupe

dedupe_app = typer.Typer(help="Find and link duplicates; review doubtful pairs; undo links.",
                         invoke_without_command=True)
app.add_typer(dedupe_app, name="dedupe")


def _deduper(settings: cfg.Settings) -> Any:
    from sync.jobs import utcnow
    from sync.match import Deduper

    return Deduper(_store(settings), settings.dedupe, now=utcnow, policies=settings.policies)


@dedupe_app.callback()
def dedupe(
    ctx: typer.Context,
    obj: Annotated[list[str] | None, typer.Option("--object", "-o", help="account, contact or opportunity (default all).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the clusters, link nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train the match model again (else the kept one is "
                                          "used unless missing, weak or outgrown).")] = False,
) -> None:
    """Batch-match every live account, contact and opportunity: link sure duplicates, queue doubtful pairs."""
    if ctx.invoked_subcommand is not None:
        return
    from sync.match import MATCHED_OBJECTS

    objects = obj or list(MATCHED_OBJECTS)
    bad = [o for o in objects if o not in MATCHED_OBJECTS]
    if bad:
        raise _fail(f"--object: {bad[0]!r} has no match model (use {', '.join(MATCHED_OBJECTS)})")
    settings = load_settings()
    deduper = _deduper(settings)
    # the matcher's lease per object, as a fleet's match task takes it: a batch never
    # links beside another matcher (renewed while it runs; free soon after a crash)
    from sync.leases import LeaseSet

    leases = LeaseSet(deduper.store, seconds=settings.fleet.lease_seconds, label="dedupe")
    if not dry_run:
        _taken, busy = leases.acquire([("match", o) for o in objects])
        if busy:
            leases.release()
            raise _fail(f"skipped: another job is matching {', '.join(o for _m, o in busy)} (its lease); "
                        "nothing was linked", code=EXIT_SKIPPED)
    try:
        with err_console.status("matching…", spinner="dots") if not as_json and err_console.is_terminal else _null():
            reports = [deduper.run_batch(o, dry_run=dry_run, retrain=retrain).as_dict() for o in objects]
    finally:
        leases.release()
    if as_json:
        print_json({"dry_run": dry_run, "objects": reports})
        return
    t = Table(title="dedupe (dry run)" if dry_run else "dedupe")
    for col in ("object", "records", "clusters", "links made" if not dry_run else "links planned",
                "review queued", "review open"):
        t.add_column(col)
    for r in reports:
        t.add_row(r["object_type"], str(r["records"]), str(r["clusters"]), str(r["links"]),
                  str(r["review_added"]), str(r["review_open"]))
    console.print(t)
    for r in reports:
        for w in r["warnings"]:
            console.print(f"[yellow]warning:[/] {r['object_type']}: {w}", highlight=False)
        if r["policy"] == "merge" and r["links"] and not dry_run:
            console.print(f"{r['object_type']}: policy merge — the systems' merges are planned at the next "
                          "sync (`revsync plan` shows them first)")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@dedupe_app.command("review")
def dedupe_review(
    accept: Annotated[list[int] | None, typer.Option("--accept", help="Link this pair (repeatable).")] = None,
    reject: Annotated[list[int] | None, typer.Option("--reject", help="Never link this pair (repeatable).")] = None,
    obj: Annotated[str | None, typer.Option("--object", "-o", help="Only this object.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many pairs.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List doubtful pairs with their evidence, or accept/reject them (recorded)."""
    from sync import store as st

    settings = load_settings()
    deduper = _deduper(settings)
    if accept or reject:
        done = []
        for rid, ok in [*((i, True) for i in accept or []), *((i, False) for i in reject or [])]:
            try:
                done.append(deduper.decide(rid, ok))
            except (LookupError, ValueError) as e:
                raise _fail(str(e)) from None
        if as_json:
            print_json({"decided": done})
        else:
            for d in done:
                extra = f" (merge {d['merge_id']})" if d["merge_id"] else ""
                note = f": {d['note']}" if d.get("note") else ""
                console.print(f"review {d['id']}: {d['state']}{extra}{note}", highlight=False)
        return
    with deduper.store.session() as s:
        rows = st.review_rows(s, obj, "open", limit=limit)
        pairs: list[dict[str, Any]] = []
        for r in rows:
            left = st.entity_row(s, r.object_type, r.left_id)
            right = st.entity_row(s, r.object_type, r.right_id)
            pairs.append({"id": r.id, "object": r.object_type, "probability": round(float(r.probability), 4),
                          "left": _summary(r.object_type, left), "right": _summary(r.object_type, right),
                          "evidence": r.evidence})
    if as_json:
        print_json({"open": len(pairs), "pairs": pairs})
        return
    if not pairs:
        console.print("the review queue is empty")
        return
    t = Table(title=f"{len(pairs)} pair(s) to review (accept with --accept ID, reject with --reject ID)")
    for col in ("id", "object", "p", "left", "right", "evidence"):
        t.add_column(col)
    for p in pairs:
        ev = ", ".join(f"{k}: {v}" for k, v in p["evidence"].items())
        t.add_row(str(p["id"]), p["object"], f"{p['probability']:.3f}", p["left"], p["right"], ev)
    console.print(t)


def _summary(object_type: str, row: Any) -> str:
    if row is None:
        return "(gone)"
    if object_type == "contact":
        return " ".join(str(x) for x in (row.first_name, row.last_name, f"<{row.email}>" if row.email else "") if x)
    if object_type == "opportunity":
        return " ".join(str(x) for x in (row.name, row.amount, row.currency, row.close_date, row.stage) if x)
    return " ".join(str(x) for x in (row.name, row.domain) if x)


@dedupe_app.command("undo")
def dedupe_undo(
    merge_id: Annotated[int, typer.Argument(help="The merge-ledger id (shown by `revsync dedupe --json`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Undo a link or merge: the entities are separated again (their records point at
    their own entities) and the pair is never linked automatically afterwards. Records
    a system already merged stay merged there (neither HubSpot nor Salesforce can
    unmerge): the output says which."""
    settings = load_settings()
    try:
        out = _deduper(settings).undo(merge_id)
    except (LookupError, ValueError) as e:
        raise _fail(str(e)) from None
    if as_json:
        print_json(out)
    else:
        console.print(f"merge {merge_id} undone: {len(out['restored'])} {out['object']}(s) restored "
                      "(their values are re-decided at the next sync)")
        for notes in out["remote"].values():
            for note in notes:
                console.print(f"  [yellow]{note}[/yellow]")


# --------------------------------------------------------------------------- sandbox and demo


def sandbox_settings(info: dict[str, Any], database_url: str, *, limits: Any = None,
                     definitions: Mapping[str, Any] | None = None) -> cfg.Settings:
    """Settings whose three connections point at a running sandbox (``Sandbox.info``);
    ``definitions``: a ``[definitions]`` table (the demo's custom stage)."""
    from connectors.base import ConnectionSettings

    ca, creds = info["ca_cert"], info["credentials"]
    conns = {
        "salesforce": ConnectionSettings("salesforce", "salesforce", {
            "instance_url": info["salesforce"], "token_url": f"{info['salesforce']}/services/oauth2/token",
            "ca_bundle": ca}, {k: creds["salesforce"][k] for k in ("client_id", "client_secret", "refresh_token")}),
        "hubspot": ConnectionSettings("hubspot", "hubspot", {"host": info["hubspot"], "ca_bundle": ca},
                                      {"access_token": creds["hubspot"]["access_token"]}),
        "planhat": ConnectionSettings("planhat", "planhat", {"base_url": info["planhat"], "ca_bundle": ca},
                                      {"api_token": creds["planhat"]["api_token"]}),
    }
    # the sandbox's customer-success pod: every won account gets this CSM (a real org
    # sets [governance.handoff] csm_by_owner or keeps the CSM in a mapped field)
    base = cfg.parse({"database": {"url": database_url},
                      "governance": {"handoff": {"default_csm": cfg.SANDBOX_CSM}},
                      "definitions": dict(definitions or {})},
                     resolve_secrets=False)
    return cfg.Settings(path=None, database_url=database_url, connections=conns, policies=base.policies,
                        limits=limits or base.limits, schedule=base.schedule, governance=base.governance,
                        definitions=base.definitions)


#: the demo's shared definitions: a custom deal stage both CRMs gain (issue 15)
DEMO_DEFINITIONS: dict[str, Any] = {"stage": {"values": {"pilot": {"salesforce": "Pilot", "hubspot": "pilot"}}}}
#: how many open Salesforce deals the demo's reps move to the custom stage
DEMO_PILOT_DEALS = 5


def _demo_custom_stage(sb: Any) -> int:
    """The sandbox admins add the custom stage (a Salesforce StageName value, a HubSpot
    pipeline stage) and reps move a few open deals to it before the first sync."""
    sf, hs = sb.emulators["salesforce"], sb.emulators["hubspot"]
    with sf.lock:
        sf.org.add_picklist_value("Opportunity", "StageName", "Pilot")
        opps = sorted((o for o in sf.org.records["Opportunity"].values()
                       if not o.get("IsClosed") and not o.get("IsDeleted")), key=lambda o: str(o["Id"]))
        for o in opps[:DEMO_PILOT_DEALS]:  # a rep's edit: stamped now, so it is the latest
            sf.org.update_values("Opportunity", str(o["Id"]), {"StageName": "Pilot"}, sf.now())
    hs.add_option("deals", "dealstage", "pilot")
    return min(len(opps), DEMO_PILOT_DEALS)


def _cycle_summary(report: Any) -> dict[str, Any]:
    d = report.as_dict()
    return {k: d[k] for k in ("run_id", "status", "pulled", "written", "failed", "planned", "entities", "links",
                              "matched_links", "remote_merges", "review_queued", "new_entities", "conflicts", "errors", "deleted",
                              "api_calls", "seconds", "messages")}


@app.command()
def demo(
    accounts: Annotated[int, typer.Option("--accounts", help="Size of the seeded sandbox (real companies).")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generator (same seed, same data).")] = 42,
    workdir: Annotated[Path, typer.Option("--dir", help="Where the SQLite file and CA go.")] = Path(".revsync/demo"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Sandbox demo: a full sync of all three systems into SQLite, then a quiet second cycle.

    Starts the local sandbox, runs a full sync into an SQLite file, then a second cycle
    that must write nothing."""
    import shutil

    from sandbox.server import Sandbox
    from sync.migrate import upgrade

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db_url = f"sqlite:///{workdir / 'revsync.db'}"
    if not as_json:
        console.print(f"starting the sandbox ({accounts} accounts, seed {seed}) and syncing into {workdir / 'revsync.db'}")
    with Sandbox(accounts=accounts, seed=seed, tier="off", ca_dir=workdir / "ca") as sb:
        settings = sandbox_settings(sb.info, db_url, definitions=DEMO_DEFINITIONS)
        _demo_custom_stage(sb)
        upgrade(db_url)
        cycles = []
        with _Bars(enabled=not as_json and err_console.is_terminal) as bars:
            runner = make_runner(settings, progress=bars)
            first = runner.run_cycle(force=True)  # the initial load: caps apply from the next cycle on
            cycles.append(first)
            second = runner.run_cycle()
            cycles.append(second)
    from sqlalchemy import func, select

    from sync import store as st
    from sync.governance import held_ops
    from sync.handoff import handoff_summary
    from sync.hierarchy import summary as hierarchy_summary

    with runner.store.session() as s:
        governance: dict[str, Any] = {"handoffs": handoff_summary(s), "held_ops": len(held_ops(s)),
                                      "hierarchy": hierarchy_summary(s)}
        pilot = s.scalar(select(func.count()).select_from(st.OpportunityRow).where(
            st.OpportunityRow.stage == "pilot", st.OpportunityRow.deleted_at.is_(None))) or 0
        governance["custom_stage"] = {"stage": "pilot", "deals": pilot}
    summary = {
        "accounts": accounts, "seed": seed, "database": db_url,
        "cycles": [_cycle_summary(c) for c in cycles],
        "second_cycle_writes": second.writes,
        "governance": governance,
    }
    if as_json:
        print_json(summary)
    else:
        _print_report(first, "cycle 1: full sync")
        _print_report(second, "cycle 2: incremental")
        if second.writes == 0:
            console.print("[bold green]cycle 2 wrote nothing:[/] all three systems agree with the canonical store")
        else:
            console.print(f"[bold yellow]cycle 2 wrote {second.writes} change(s)[/]")
        h = governance["handoffs"]
        console.print(f"closed-won handoffs: {h['completed']} complete, {h['waiting']} waiting for data "
                      f"(`revsync handoffs`); writes held by governance: {governance['held_ops']} "
                      "(`revsync plan`)", highlight=False)
        console.print(f"custom deal stage 'pilot' (\\[definitions.stage]): {governance['custom_stage']['deals']} "
                      "deal(s), in Salesforce and HubSpot (`revsync definitions`)", highlight=False)
        hier = governance["hierarchy"]
        console.print(f"account hierarchies: {hier['with_parent']} account(s) under a parent, "
                      f"{hier['deepest']} level(s) at most; parents refused: {hier['refused']} (`revsync errors`)",
                      highlight=False)
        console.print(f"explore it:  REVSYNC_DATABASE_URL={db_url} .venv/bin/revsync status   "
                      "(also: plan, errors, explain, handoffs, quality, dedupe review)", highlight=False,
                      soft_wrap=True)
    if first.status == "failed" or second.status == "failed" or second.writes:
        raise typer.Exit(1)


def _mount_sandbox() -> None:
    from sandbox.cli import app as sandbox_app

    app.add_typer(sandbox_app, name="sandbox", help="Local HTTPS emulators of Salesforce, HubSpot and Planhat.")


_mount_sandbox()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
