"""The ``revsync`` command (Typer + Rich)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from sync import config as cfg

app = typer.Typer(
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


class State:
    config_path: Path | None = None


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def load_settings(*, resolve_secrets: bool = True) -> cfg.Settings:
    """Load revsync.toml (or --config), turning a bad file into one clear message."""
    try:
        settings = cfg.load(State.config_path, resolve_secrets=resolve_secrets)
    except cfg.ConfigError as e:
        raise _fail(str(e)) from None
    cfg.install_redactor(settings)
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
) -> None:
    State.config_path = config
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
        for col in ("id", "kind", "status", "started", "finished"):
            t.add_column(col)
        for r in data["last_runs"]:
            t.add_row(str(r["id"]), r["kind"], r["status"], r["started_at"], r["finished_at"] or "-")
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
