"""The sandbox server: three HTTPS emulators on 127.0.0.1 with a throwaway CA.

``Sandbox`` starts one threaded werkzeug server per system (Salesforce, HubSpot,
Planhat), each with real TLS from a ``trustme`` CA whose certificate is written to a
PEM file (``info["ca_cert"]``) that clients verify against. Every request first
meets the control routes (``/__sandbox/...``), then the fault injector: ``slow`` and
``reset`` are played here, every other fault is passed to the emulator to render in
its vendor's shape.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import random
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import trustme
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from sandbox.core import (
    SYSTEMS,
    TIERS,
    Clock,
    Emulator,
    FaultInjector,
    FaultSpec,
    FaultSpecError,
    SandboxContext,
    Stats,
    json_response,
)
from sandbox.faults import FaultSpecInput

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CONTROL_PREFIX = "/__sandbox/"
EDIT_KINDS = ("update", "create", "delete", "merge", "association")
DEFAULT_SLOW_SECONDS = 5.0
# An idle keep-alive (or half-open) client connection is closed after this long.
CONNECTION_TIMEOUT = 120.0
# environ key the app sets once the request body has been read to its end.
_DRAINED = "revsync.sandbox.body_drained"
# Emulator classes, imported lazily so a subset can run while others are missing.
EMULATOR_CLASSES = {
    "salesforce": "sandbox.salesforce:SalesforceEmulator",
    "hubspot": "sandbox.hubspot:HubSpotEmulator",
    "planhat": "sandbox.planhat:PlanhatEmulator",
}


class SandboxError(RuntimeError):
    """The sandbox cannot start as asked (bad arguments, missing data, missing emulator)."""


class _DropConnection(ConnectionResetError):
    """Raised by the app to make the handler reset the TCP connection (no response)."""


def load_emulator_class(system: str) -> type[Emulator]:
    """Import the emulator class of ``system``; fail loudly if it is not there."""
    try:
        target = EMULATOR_CLASSES[system]
    except KeyError:
        raise SandboxError(f"unknown system {system!r} (use {', '.join(SYSTEMS)})") from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise SandboxError(f"emulator {target} cannot be loaded: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Emulator)):
        raise SandboxError(f"{target} is not an Emulator subclass")
    return cls


def make_credentials(seed: int) -> dict[str, dict[str, str]]:
    """The fixed credentials the sandbox accepts, derived from the seed (not secrets)."""

    def token(name: str, n: int = 32) -> str:
        return hashlib.sha256(f"revsync-sandbox:{seed}:{name}".encode()).hexdigest()[:n]

    return {
        "salesforce": {
            "client_id": f"3MVG9sandbox{token('sf-client-id', 24)}",
            "client_secret": token("sf-client-secret", 40),
            "refresh_token": f"5Aep861sandbox{token('sf-refresh', 40)}",
            "username": "admin@revsync-sandbox.example.com",
            "password": f"pw-{token('sf-password', 16)}",
        },
        "hubspot": {
            "access_token": f"pat-na1-{token('hs-pat', 8)}-{token('hs-pat-2', 4)}-{token('hs-pat-3', 12)}",
            "client_id": token("hs-client-id", 36),
            "client_secret": token("hs-client-secret", 36),
            "refresh_token": f"na1-{token('hs-refresh', 4)}-{token('hs-refresh-2', 28)}",
        },
        "planhat": {"api_token": f"ph-{token('ph-token', 40)}"},
    }


# --------------------------------------------------------------------------- HTTP server


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, quiet, with HTTP/1.1 keep-alive and the TLS handshake
    moved into the worker thread.

    werkzeug's own ``run_wsgi`` closes every connection (and then waits 10 ms to
    drain the socket), so each call would pay a new TCP + TLS handshake. Our app
    always drains the request body (``_SystemApp``) and returns a complete body, so
    this ``run_wsgi`` can keep the connection open the way the vendors' servers do.
    """

    timeout = CONNECTION_TIMEOUT
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        conn = self.request
        conn.settimeout(self.timeout)
        # Headers and body go out as separate small writes: without TCP_NODELAY,
        # Nagle's algorithm holds the body back until the client's delayed ACK.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(conn, ssl.SSLSocket):
            conn.do_handshake()
        super().setup()

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        captured: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured[:] = [status, headers]
            return chunks.append

        try:
            app_iter = self.server.app(environ, start_response)
            try:
                chunks.extend(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        except _DropConnection as exc:
            self.connection_dropped(exc, environ)
            return
        except Exception:
            log.exception("sandbox http: unhandled error on %s %s", self.command, self.path)
            captured[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
            self.close_connection = True
        if not environ.get(_DRAINED):
            self.close_connection = True  # unread body bytes would poison the next request
        status, headers = captured
        code = int(status.split(None, 1)[0])
        no_body = self.command == "HEAD" or code < 200 or code in (204, 304)
        body = b"" if no_body else b"".join(chunks)
        lines = [f"HTTP/1.1 {status}"]
        lines.extend(
            f"{key}: {value}"
            for key, value in headers
            if key.lower() not in ("content-length", "connection", "transfer-encoding")
        )
        if not (code < 200 or code in (204, 304)):
            lines.append(f"Content-Length: {sum(len(c) for c in chunks)}")
        lines.append(f"Date: {self.date_time_string()}")
        lines.append("Connection: " + ("close" if self.close_connection else "keep-alive"))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        self.close_connection = True
        if isinstance(error, _DropConnection):
            # SO_LINGER 0 + close: the kernel answers with a TCP RST, no TLS close_notify.
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            except OSError:
                pass

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are counted in Stats, not logged."""

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("sandbox http: " + format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox http: " + format, *args)


class _Server(ThreadedWSGIServer):
    """A threaded werkzeug server that tracks its open connections (so ``stop`` can
    close kept-alive ones) and does not print client-side disconnects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            try:
                # The plain-socket shutdown: SSLSocket.shutdown would also drop the TLS
                # object under the handler thread that may be reading it right now.
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox http: connection error from %s", client_address, exc_info=True)


def _make_server(app: Any, port: int, tls: ssl.SSLContext) -> _Server:
    server = _Server(HOST, port, app, handler=_Handler)
    # Wrap here rather than via ssl_context=: the handshake then runs in the worker
    # thread (``_Handler.setup``), so one stalled client cannot block accept().
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.ssl_context = tls
    return server


# --------------------------------------------------------------------------- the app


class _SystemApp:
    """The WSGI app of one system's port: control routes, faults, then the emulator."""

    def __init__(self, sandbox: Sandbox, system: str, emulator: Emulator) -> None:
        self.sandbox = sandbox
        self.system = system
        self.emulator = emulator

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith(CONTROL_PREFIX):
            response = self.sandbox.control(request, self.system)
        else:
            response = self.serve(request)
        _drain(request)
        environ[_DRAINED] = True
        return response(environ, start_response)

    def serve(self, request: Request) -> Response:
        ctx = self.sandbox.ctx
        endpoint = self.emulator.endpoint_name(request)
        fault = ctx.faults.draw(self.system, endpoint, write=request.method != "GET")
        if fault is not None and fault.kind == "reset":
            ctx.stats.fault(self.system, "reset")
            ctx.stats.call(self.system, endpoint, 0)  # 0: no response was sent
            raise _DropConnection("sandbox reset fault")
        if fault is not None and fault.kind == "slow":
            ctx.stats.fault(self.system, "slow")
            time.sleep(float(fault.get("seconds", DEFAULT_SLOW_SECONDS)))
            fault = None
        try:
            return self.emulator.handle(request, fault)
        except Exception as exc:
            log.exception("sandbox %s emulator failed on %s %s", self.system, request.method, request.path)
            ctx.stats.call(self.system, endpoint, 500)
            return json_response(
                {"error": "sandbox emulator error", "detail": f"{type(exc).__name__}: {exc}"}, 500
            )


# --------------------------------------------------------------------------- Sandbox


class Sandbox:
    """Three HTTPS emulators on loopback; a context manager.

    ``data_dir`` holds seed data (see ``sandbox/README.md``); with ``accounts`` and
    no ``data_dir`` the generator writes it to a temp dir first. ``port`` 0 picks
    random ports; a fixed ``port`` gives salesforce ``port``, hubspot ``port + 1``,
    planhat ``port + 2``. ``systems`` starts a subset. ``emulators`` maps a system
    to an Emulator class, replacing the lazy import (tests).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        accounts: int | None = None,
        seed: int = 42,
        faults: FaultSpecInput | FaultSpec = None,
        tier: str = "pro",
        ca_dir: Path | None = None,
        port: int = 0,
        systems: Iterable[str] | None = None,
        clock: Clock | None = None,
        emulators: Mapping[str, type[Emulator]] | None = None,
        noise: str | None = None,
        fresh_org: bool = False,
    ) -> None:
        if tier not in TIERS:
            raise SandboxError(f"unknown tier {tier!r} (use {', '.join(TIERS)})")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise SandboxError(f"data directory {data_dir} does not exist")
        if accounts is not None and accounts < 0:
            raise SandboxError("accounts must be >= 0")
        chosen = tuple(systems) if systems is not None else tuple(emulators or SYSTEMS)
        if not chosen:
            raise SandboxError("no systems to start")
        for system in chosen:
            if system not in SYSTEMS:
                raise SandboxError(f"unknown system {system!r} (use {', '.join(SYSTEMS)})")
        if not 0 <= port <= 65535 - len(SYSTEMS):
            raise SandboxError(f"port {port} is out of range")
        self.systems = tuple(s for s in SYSTEMS if s in chosen)
        self.seed = seed
        self.accounts = accounts
        self.noise = noise  # the generator's noise profile (with ``accounts``)
        self.port = port
        self.ca_dir = Path(ca_dir) if ca_dir is not None else None
        try:
            injector = FaultInjector(faults, seed=seed)
        except FaultSpecError as exc:
            raise SandboxError(f"bad fault spec: {exc}") from exc
        self.ctx = SandboxContext(
            clock=clock or Clock(),
            faults=injector,
            stats=Stats(),
            tier=tier,
            credentials=make_credentials(seed),
            seed=seed,
        )
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._emulator_classes = dict(emulators or {})
        self.emulators: dict[str, Emulator] = {}
        self.manifest: dict[str, Any] | None = None
        self.urls: dict[str, str] = {}
        self.ca_cert: Path | None = None
        self.ground_truth: Path | None = None
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._tmp: Path | None = None
        self._started = False
        #: start as a newly connected org: no external-id fields yet (see make_fresh)
        self.fresh_org = fresh_org

    # -- lifecycle

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def data_dir(self) -> Path | None:
        """Where the seed data was read from (None: no data)."""
        return self._data_dir

    def start(self) -> Sandbox:
        """Load data, make the CA and start the three servers."""
        if self._started:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="revsync-sandbox-"))
        classes = {s: self._emulator_classes.get(s) or load_emulator_class(s) for s in self.systems}
        data_dir = self._data_dir
        if data_dir is None and self.accounts is not None:
            data_dir = self._tmp / "data"
            self.manifest = run_generator(data_dir, accounts=self.accounts, seed=self.seed, noise=self.noise)
            self._data_dir = data_dir
        elif data_dir is not None and (data_dir / "manifest.json").is_file():
            self.manifest = json.loads((data_dir / "manifest.json").read_text())
        load_dir = data_dir if data_dir is not None else self._tmp / "empty"
        if data_dir is not None and (data_dir / "ground_truth.json").is_file():
            self.ground_truth = data_dir / "ground_truth.json"

        for system, cls in classes.items():
            emulator = cls(self.ctx)
            emulator.load(load_dir)
            self.emulators[system] = emulator
        if self.fresh_org:
            make_fresh(self.emulators)

        tls = self._make_tls()
        for system in self.systems:
            port = self.port + SYSTEMS.index(system) if self.port else 0
            server = _make_server(_SystemApp(self, system, self.emulators[system]), port, tls)
            self._servers.append(server)
            self.urls[system] = f"https://{HOST}:{server.port}"
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"sandbox-{system}",
                daemon=True,
            )
            self._threads.append(thread)
        self.ctx.urls.update(self.urls)
        for thread in self._threads:
            thread.start()

    def _make_tls(self) -> ssl.SSLContext:
        ca = trustme.CA(organization_name="revsync sandbox")
        leaf = ca.issue_cert(HOST, "localhost")
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(tls)
        target_dir = self.ca_dir or self._tmp
        assert target_dir is not None
        target_dir.mkdir(parents=True, exist_ok=True)
        self.ca_cert = target_dir / "sandbox-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_cert))
        return tls

    def stop(self) -> None:
        """Stop the servers and remove the temp dir (generated data, CA if not in ca_dir)."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
            server.close_connections()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._started = False

    # -- info

    @property
    def info(self) -> dict[str, Any]:
        """The ready line: URLs, CA bundle, stats URL, ground truth, credentials."""
        first = self.urls[self.systems[0]] if self.urls else None
        return {
            **{system: self.urls.get(system) for system in SYSTEMS},
            "ca_cert": str(self.ca_cert) if self.ca_cert else None,
            "stats": f"{first}{CONTROL_PREFIX}stats" if first else None,
            "ground_truth": str(self.ground_truth) if self.ground_truth else None,
            "credentials": {s: dict(self.ctx.credentials[s]) for s in self.systems},
        }

    # -- control routes

    def control(self, request: Request, system: str) -> Response:
        """Answer ``/__sandbox/...`` (never counted in stats, never faulted)."""
        route = request.path[len(CONTROL_PREFIX):].strip("/")
        method = request.method
        if route == "health" and method == "GET":
            return json_response(
                {
                    "status": "ok",
                    "system": system,
                    "systems": list(self.systems),
                    "tier": self.ctx.tier,
                    "counts": {s: e.counts() for s, e in self.emulators.items()},
                }
            )
        if route == "stats" and method == "GET":
            return json_response(self.ctx.stats.snapshot())
        if route == "stats/reset" and method == "POST":
            self.ctx.stats.reset()
            return json_response({"status": "ok"})
        if route == "faults" and method == "GET":
            return json_response(self.ctx.faults.describe())
        if route == "faults" and method == "POST":
            body = _json_body(request)
            if isinstance(body, Response):
                return body
            try:
                self.ctx.faults.set_spec(body)
            except FaultSpecError as exc:
                return json_response({"error": f"bad fault spec: {exc}"}, 400)
            return json_response(self.ctx.faults.describe())
        if route == "edits" and method == "POST":
            return self._edits(request, system)
        if route in ("health", "stats", "stats/reset", "faults", "edits"):
            return json_response({"error": f"method {method} not allowed on {request.path}"}, 405)
        return json_response({"error": f"unknown control route {request.path}"}, 404)

    def _edits(self, request: Request, default_system: str) -> Response:
        body = _json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, Mapping):
            return json_response({"error": "edits body must be a JSON object"}, 400)
        system = body.get("system", default_system)
        if system not in self.emulators:
            return json_response({"error": f"system {system!r} is not running"}, 400)
        n = body.get("n", 10)
        seed = body.get("seed", self.seed)
        kinds = body.get("kinds", ["update"])
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            return json_response({"error": "'n' must be an integer >= 0"}, 400)
        if isinstance(seed, bool) or not isinstance(seed, int):
            return json_response({"error": "'seed' must be an integer"}, 400)
        if (
            not isinstance(kinds, list)
            or not kinds
            or any(k not in EDIT_KINDS for k in kinds)
        ):
            return json_response({"error": f"'kinds' must be a non-empty list of {list(EDIT_KINDS)}"}, 400)
        edits = self.emulators[system].apply_edits(random.Random(seed), n, tuple(kinds))
        return json_response(edits)


def _drain(request: Request) -> None:
    """Read whatever the handler left of the request body, so the connection can be reused."""
    stream = request.stream
    exhaust = getattr(stream, "exhaust", None)
    if exhaust is not None:
        exhaust()
        return
    while stream.read(65536):
        pass


def _json_body(request: Request) -> Any:
    """The parsed JSON body, or a 400 Response."""
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except json.JSONDecodeError as exc:
        return json_response({"error": f"body is not valid JSON: {exc}"}, 400)


def make_fresh(emulators: Mapping[str, Emulator]) -> None:
    """Fresh-org mode: Salesforce without ``Revsync_Id__c`` (its integration user's
    permission set empty), HubSpot without the ``revsync_id`` property; Planhat needs
    nothing (revsync keys it on the built-in ``sourceId``)."""
    from sandbox import hubspot_setup, salesforce_metadata

    for system, emulator in emulators.items():
        if system == "salesforce":
            salesforce_metadata.make_fresh(emulator)  # type: ignore[arg-type]
        elif system == "hubspot":
            hubspot_setup.make_fresh(emulator)  # type: ignore[arg-type]


def run_generator(out_dir: Path, *, accounts: int, seed: int, noise: str | None = None) -> dict[str, Any]:
    """Call the seed generator, ``sandbox.generator.generate``; return its manifest."""
    try:
        module = importlib.import_module("sandbox.generator")
        generate = module.generate
    except (ImportError, AttributeError) as exc:
        raise SandboxError(f"the seed generator cannot be loaded: {exc}") from exc
    try:
        manifest: dict[str, Any] = generate(Path(out_dir), accounts=accounts, seed=seed, noise=noise)
    except ValueError as exc:  # an unknown noise profile
        raise SandboxError(str(exc)) from None
    return manifest
