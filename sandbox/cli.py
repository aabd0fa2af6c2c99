"""`revsync sandbox ...`: serve the emulators, or write seed data.

The main CLI mounts this app with ``app.add_typer(sandbox.cli.app, name="sandbox")``;
it also runs alone as ``python -m sandbox.cli``.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from sandbox.core import SYSTEMS, TIERS
from sandbox.server import Sandbox, SandboxError, run_generator

app = typer.Typer(
    help="Local HTTPS emulators of Salesforce, HubSpot and Planhat.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_USAGE = 2


def _fail(message: str) -> typer.Exit:
    """Print one clear line to stderr; the caller raises the returned Exit(2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def _read_faults(spec: str | None) -> str | None:
    """The fault spec text; ``@path`` reads it from a file."""
    if spec is None or not spec.startswith("@"):
        return spec
    path = Path(spec[1:])
    try:
        return path.read_text()
    except OSError as exc:
        raise _fail(f"cannot read fault spec file {path}: {exc.strerror}") from None


def _parse_systems(systems: str | None) -> tuple[str, ...] | None:
    if systems is None:
        return None
    chosen = tuple(s.strip() for s in systems.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SYSTEMS]
    if unknown or not chosen:
        raise _fail(f"--systems takes a comma-separated subset of {', '.join(SYSTEMS)}")
    return chosen


def write_secrets_file(path: Path, credentials: dict[str, dict[str, str]]) -> None:
    """The sandbox's credentials as ``VARIABLE = "value"`` under the starter config's names."""
    from connectors.registry import starter_secret_env

    lines = ["# Credentials of the local revsync sandbox (not real secrets).\n"]
    for system, names in starter_secret_env().items():
        for key, env in names.items():
            if key in credentials.get(system, {}):
                lines.append(f"{env} = {json.dumps(credentials[system][key])}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Salesforce port (HubSpot +1, Planhat +2); 0 = random ports.")] = 0,
    accounts: Annotated[int | None, typer.Option(help="Generate seed data for N accounts first.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for generated data, faults and credentials.")] = 42,
    data: Annotated[Path | None, typer.Option(help="Seed data directory (instead of --accounts).")] = None,
    noise: Annotated[
        str | None, typer.Option(help="Noise profile of generated data: classic or real (default classic).")
    ] = None,
    faults: Annotated[str | None, typer.Option(help="Fault spec (string form, JSON, or @file).")] = None,
    tier: Annotated[str, typer.Option(help=f"Rate-limit tier: {', '.join(TIERS)}.")] = "pro",
    ca_dir: Annotated[Path | None, typer.Option(help="Write the CA bundle here (default: a temp dir).")] = None,
    systems: Annotated[str | None, typer.Option(help="Comma-separated subset of systems to start.")] = None,
    secrets_file: Annotated[
        Path | None,
        typer.Option(help="Also write the credentials as a revsync secrets file (the starter config's names)."),
    ] = None,
    fresh_org: Annotated[
        bool, typer.Option("--fresh-org", help="Start like a newly connected org: no revsync external-id fields yet."),
    ] = False,
    jwt_public_key: Annotated[
        Path | None,
        typer.Option(help="Register this PEM public key for the Salesforce JWT bearer flow (client_id as consumer key)."),
    ] = None,
) -> None:
    """Start the sandbox, print one JSON ready line, serve until SIGINT/SIGTERM."""
    if data is not None and accounts is not None:
        raise _fail("give --data or --accounts, not both")
    if noise is not None and accounts is None:
        raise _fail("--noise applies to generated data: give it with --accounts")
    try:
        sandbox = Sandbox(
            data,
            accounts=accounts,
            seed=seed,
            noise=noise,
            faults=_read_faults(faults),
            tier=tier,
            ca_dir=ca_dir,
            port=port,
            systems=_parse_systems(systems),
            fresh_org=fresh_org,
        )
        sandbox.start()
        if jwt_public_key is not None and "salesforce" in sandbox.emulators:
            from sandbox.salesforce_jwt import register

            register(sandbox.emulators["salesforce"],  # type: ignore[arg-type]
                     sandbox.info["credentials"]["salesforce"]["client_id"], jwt_public_key.read_text())
    except SandboxError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot start the sandbox: {exc}") from None

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if secrets_file is not None:
        write_secrets_file(secrets_file, sandbox.info["credentials"])
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        typer.echo(json.dumps(sandbox.info, sort_keys=True))
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def generate(
    accounts: Annotated[int, typer.Option(help="Number of accounts to generate.")],
    out: Annotated[Path, typer.Option(help="Output directory.")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives byte-identical files.")] = 42,
    noise: Annotated[
        str | None, typer.Option(help="Noise profile: classic or real (default classic).")
    ] = None,
) -> None:
    """Write seeded sandbox data to OUT and print the manifest as JSON."""
    if accounts < 0:
        raise _fail("--accounts must be >= 0")
    try:
        manifest = run_generator(out, accounts=accounts, seed=seed, noise=noise)
    except SandboxError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write seed data to {out}: {exc}") from None
    typer.echo(json.dumps(manifest, sort_keys=True))


if __name__ == "__main__":
    app()
