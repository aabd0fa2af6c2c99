"""The sync-health console (``revsync web``): Starlette + Jinja2, htmx and Chart.js served
from the package (nothing from a CDN).

Pages: runs, error ledger (filter, re-queue selected), review queue (accept / reject),
pending plan with field diffs, find + explain, quality and revenue (charts), the shared
definitions (read only: each value set's canonical values and each system's), audit log;
``/metrics`` for Prometheus. Every page needs a login; every POST a CSRF token; every
action is written to the audit log. The quality report is computed in a background
thread and cached (it reads every remote record; a page must not wait for it).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sync import metrics
from sync import store as st
from sync.quality import quality_report
from web.auth import AuditLog, Credentials, csrf_ok, new_csrf_token
from web.search import search

SESSION_SECONDS = 8 * 3600
QUALITY_TTL = 300.0
PAGE = 200  # rows per list page
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@dataclass
class Console:
    """What the routes share: the store, credentials, audit log, settings, caches."""

    store: st.Store
    credentials: Credentials
    audit: AuditLog
    dedupe: Mapping[str, Any] = field(default_factory=dict)
    policies: Mapping[str, Any] = field(default_factory=dict)
    quality_config: Mapping[str, Any] = field(default_factory=dict)
    #: the shared definitions in force (``mapping.definitions.Definitions``; None: the defaults)
    definitions: Any = None
    secrets: list[str] = field(default_factory=list)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    _quality: dict[str, Any] | None = None
    _quality_at: float = 0.0
    _quality_lock: threading.Lock = field(default_factory=threading.Lock)
    _quality_running: bool = False

    def quality(self, *, wait: bool = False) -> dict[str, Any] | None:
        """The cached report; a stale or missing one is recomputed in the background."""
        fresh = self._quality is not None and time.monotonic() - self._quality_at < QUALITY_TTL
        if not fresh:
            self.refresh_quality(wait=wait)
        return self._quality

    def refresh_quality(self, *, wait: bool = False) -> None:
        with self._quality_lock:
            if self._quality_running:
                if not wait:
                    return
            self._quality_running = True

        def work() -> None:
            try:
                with self.store.session() as s:
                    data = quality_report(s, now=self.now(), config=self.quality_config)
                self._quality, self._quality_at = data, time.monotonic()
            finally:
                self._quality_running = False

        if wait:
            work()
        else:
            threading.Thread(target=work, name="revsync-quality", daemon=True).start()

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            for s in self.secrets:
                value = value.replace(s, "***")
        return value


def _env(console: Console) -> Environment:
    env = Environment(loader=PackageLoader("web", "templates"), autoescape=select_autoescape(["html"]),
                      finalize=console.redact)
    env.filters["pct"] = lambda r: "-" if r is None else f"{100 * r:.1f}%"
    env.filters["money"] = lambda v: "-" if v is None else f"{float(v):,.0f}"
    env.filters["short"] = lambda v: (v or "")[:8]
    env.filters["dt"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S") if v else "-"
    return env


def _label(object_type: str, row: Any) -> str:
    if row is None:
        return "(gone)"
    if object_type == "contact":
        name = " ".join(x for x in (row.first_name, row.last_name) if x)
        return f"{name} <{row.email}>" if row.email else name or "(no name)"
    if object_type == "account":
        return " ".join(x for x in (row.name, f"({row.domain})" if row.domain else None) if x) or "(no name)"
    return row.name or "(no name)"


def _fields(object_type: str, row: Any) -> dict[str, Any]:
    if row is None:
        return {}
    t = st.ENTITY_TABLES[object_type]
    skip = {"extras", "dirty", "created_at", "updated_at"}
    return {c.key: getattr(row, c.key) for c in t.__table__.columns if c.key not in skip}


def create_app(console: Console, *, session_seconds: int = SESSION_SECONDS, https_only: bool = False) -> Starlette:
    """The ASGI app for ``console``."""
    env = _env(console)

    def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        sess = request.session
        if "csrf" not in sess:
            sess["csrf"] = new_csrf_token()
        html = env.get_template(name).render(user=sess.get("user"), csrf=sess["csrf"], path=request.url.path,
                                            **ctx)
        return HTMLResponse(html, status_code=status_code)

    def user(request: Request) -> str | None:
        u = request.session.get("user")
        if u and request.session.get("expires", 0) > time.time():
            return str(u)
        return None

    def client(request: Request) -> str | None:
        return request.client.host if request.client else None

    def login_required(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            if user(request) is None:
                request.session.pop("user", None)
                if request.method == "GET":
                    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
                return PlainTextResponse("login required", status_code=401)
            if request.method == "POST":
                form = await request.form()
                if not csrf_ok(request.session, str(form.get("csrf") or "")):
                    console.audit.write(user(request), client(request), "csrf_refused", path=request.url.path)
                    return PlainTextResponse("CSRF token missing or wrong", status_code=403)
            return await fn(request)

        return wrapped

    # ------------------------------------------------------------------ login

    async def login_page(request: Request) -> Response:
        return render(request, "login.html", next=request.query_params.get("next", "/"), error=None)

    async def login_post(request: Request) -> Response:
        form = await request.form()
        nxt = str(form.get("next") or "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        if not csrf_ok(request.session, str(form.get("csrf") or "")):
            return PlainTextResponse("CSRF token missing or wrong", status_code=403)
        name, password = str(form.get("user") or ""), str(form.get("password") or "")
        if not console.credentials.check(name, password):
            console.audit.write(name or None, client(request), "login_failed")
            return render(request, "login.html", status_code=401, next=nxt, error="wrong user or password")
        request.session.clear()
        request.session.update(user=name, expires=time.time() + session_seconds, csrf=new_csrf_token())
        console.audit.write(name, client(request), "login")
        return RedirectResponse(nxt, status_code=303)

    @login_required
    async def logout(request: Request) -> Response:
        console.audit.write(user(request), client(request), "logout")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------ runs

    @login_required
    async def runs(request: Request) -> Response:
        with console.store.session() as s:
            rows = list(s.scalars(select(st.SyncRunRow).order_by(st.SyncRunRow.id.desc()).limit(50)))
            usage = list(s.scalars(select(st.ApiUsageRow).order_by(st.ApiUsageRow.day.desc(),
                                                                   st.ApiUsageRow.system).limit(12)))
            # the last run's own count (counting 100k rows on every page view costs ~0.2 s)
            entities = next((r.counts["entities"] for r in rows if (r.counts or {}).get("entities")), None)
            if entities is None:
                entities = st.entity_counts(s)
            outbox = dict(s.execute(select(st.OutboxRow.state, func.count()).group_by(st.OutboxRow.state)).all())
            open_errors = s.scalar(select(func.count()).select_from(st.ErrorLedgerRow)
                                   .where(st.ErrorLedgerRow.state == "open")) or 0
        view = []
        for r in rows:
            c = r.counts or {}
            view.append({"id": r.id, "kind": r.kind, "status": r.status, "started": r.started_at,
                         "seconds": c.get("seconds") if c.get("seconds") is not None else (
                             (r.finished_at - r.started_at).total_seconds() if r.finished_at else None),
                         "pulled": c.get("pulled", {}), "written": c.get("written", {}),
                         "failed": c.get("failed", {}), "api_calls": c.get("api_calls", {}),
                         "messages": c.get("messages", []), "error": r.error})
        chart = {"labels": [f"#{v['id']}" for v in reversed(view)],
                 "pulled": [sum(v["pulled"].values()) for v in reversed(view)],
                 "written": [sum(v["written"].values()) for v in reversed(view)],
                 "failed": [sum(v["failed"].values()) for v in reversed(view)]}
        return render(request, "runs.html", runs=view, usage=usage, entities=entities, outbox=outbox,
                      open_errors=open_errors, chart=chart)

    # ------------------------------------------------------------------ errors

    @login_required
    async def errors(request: Request) -> Response:
        system = request.query_params.get("system") or None
        category = request.query_params.get("category") or None
        e = st.ErrorLedgerRow
        with console.store.session() as s:
            q = select(e).where(e.state.in_(("open", "parked")))
            if system:
                q = q.where(e.system == system)
            if category:
                q = q.where(e.category == category)
            rows = list(s.scalars(q.order_by(e.id.desc()).limit(PAGE)))
            facets = s.execute(select(e.system, e.category, func.count()).where(e.state.in_(("open", "parked")))
                               .group_by(e.system, e.category)).all()
        # a failed write can be tried again (a cycle plans it anew from the current state);
        # a read error is retried by every cycle on its own
        view = [{"row": r, "retryable": r.direction == "write" and bool(r.canonical_id)} for r in rows]
        return render(request, "errors.html", errors=view, system=system, category=category,
                      systems=sorted({f[0] for f in facets}), categories=sorted({f[1] for f in facets}),
                      facets=facets, notice=request.query_params.get("notice"))

    @login_required
    async def errors_retry(request: Request) -> Response:
        form = await request.form()
        ids = [int(str(x)) for x in form.getlist("id") if str(x).isdigit()]
        if not ids:
            return RedirectResponse("/errors?notice=" + "select at least one error", status_code=303)
        with console.store.session() as s:
            n = st.reopen_write_errors(s, ids, console.now())
        console.audit.write(user(request), client(request), "retry", error_ids=ids, due=n)
        notice = f"{n} failed write(s) due now: the next cycle plans them again and pushes them"
        return RedirectResponse("/errors?" + urlencode({"notice": notice}), status_code=303)

    # ------------------------------------------------------------------ review

    @login_required
    async def review(request: Request) -> Response:
        with console.store.session() as s:
            rows = st.review_rows(s, None, "open", limit=50)
            pairs = []
            for r in rows:
                left, right = st.entity_row(s, r.object_type, r.left_id), st.entity_row(s, r.object_type, r.right_id)
                lf, rf = _fields(r.object_type, left), _fields(r.object_type, right)
                keys = [k for k in lf if k not in ("id", "deleted_at", "merged_into")]
                pairs.append({"row": r, "left": _label(r.object_type, left), "right": _label(r.object_type, right),
                              "fields": [(k, lf.get(k), rf.get(k)) for k in keys if lf.get(k) or rf.get(k)]})
        return render(request, "review.html", pairs=pairs, notice=request.query_params.get("notice"))

    @login_required
    async def review_decide(request: Request) -> Response:
        from sync.match import Deduper

        form = await request.form()
        rid, decision = str(form.get("id") or ""), str(form.get("decision") or "")
        if not rid.isdigit() or decision not in ("accept", "reject"):
            return PlainTextResponse("bad request", status_code=400)
        deduper = Deduper(console.store, dict(console.dedupe), now=console.now, policies=dict(console.policies))
        try:
            out = deduper.decide(int(rid), decision == "accept")
        except (LookupError, ValueError) as exc:
            return RedirectResponse("/review?" + urlencode({"notice": str(exc)}), status_code=303)
        console.audit.write(user(request), client(request), f"review_{decision}", review_id=int(rid),
                            merge_id=out.get("merge_id"))
        notice = f"review {rid}: {out['state']}" + (f" (merge {out['merge_id']})" if out.get("merge_id") else "")
        return RedirectResponse("/review?" + urlencode({"notice": notice}), status_code=303)

    # ------------------------------------------------------------------ plan

    @login_required
    async def plan(request: Request) -> Response:
        system = request.query_params.get("system") or None
        o = st.OutboxRow
        with console.store.session() as s:
            q = select(o).where(o.state == "pending")
            if system:
                q = q.where(o.system == system)
            rows = list(s.scalars(q.order_by(o.id).limit(PAGE)))
            counts = s.execute(select(o.system, o.kind, func.count()).where(o.state == "pending")
                               .group_by(o.system, o.kind)).all()
            held = list(s.scalars(select(o).where(o.state == "failed").order_by(o.id.desc()).limit(50)))
        ops = [{"row": r, "changes": (r.payload or {}).get("changes", []),
                "associations": (r.payload or {}).get("associations", {})} for r in rows]
        return render(request, "plan.html", ops=ops, counts=counts, held=held, system=system,
                      total=sum(n for _, _, n in counts))

    # ------------------------------------------------------------------ find / explain

    @login_required
    async def explain_search(request: Request) -> Response:
        q = (request.query_params.get("q") or "").strip()
        hits: list[dict[str, Any]] = []
        if q:
            with console.store.session() as s:
                found = search(s, q, limit=50)
                for ot, row in found:
                    hits.append({"object": ot, "id": row.id, "label": _label(ot, row)})
        tpl = "search_results.html" if request.headers.get("HX-Request") else "explain_search.html"
        return render(request, tpl, q=q, hits=hits)

    @login_required
    async def explain(request: Request) -> Response:
        ref = request.path_params["ref"]
        with console.store.session() as s:
            try:
                found = st.find_entity(s, ref)
            except Exception as exc:  # AmbiguousEntity
                return render(request, "explain_search.html", status_code=404, q=ref, hits=[], error=str(exc))
            if found is None:
                return render(request, "explain_search.html", status_code=404, q=ref, hits=[],
                              error=f"no entity {ref!r}")
            ot, cid = found
            row = st.entity_row(s, ot, cid)
            prov = st.provenance(s, ot, cid)
            refs = st.refs_for_entities(s, ot, [cid]).get(cid, [])
            records: list[dict[str, Any]] = [{"system": r.system, "native": r.native_type, "remote_id": r.remote_id,
                        "linked_by": r.link_rule, "deleted": r.deleted_at is not None,
                        "modstamp": r.remote_modstamp, "fields": r.canonical_fields or {}} for r in refs]
        systems = [r["system"] for r in records]
        rows = [{"field": p.field, "value": p.value, "system": p.system, "remote_id": p.remote_id, "rule": p.rule,
                 "modstamp": p.remote_modstamp, "run": p.run_id,
                 "claims": [r["fields"].get(p.field) for r in records]} for p in prov]
        return render(request, "explain.html", object=ot, entity=cid, label=_label(ot, row), records=records,
                      systems=systems, rows=rows)

    # ------------------------------------------------------------------ quality

    @login_required
    async def quality(request: Request) -> Response:
        data = console.quality()
        chart: dict[str, Any] = {}
        if data:
            for obj, o in data["objects"].items():
                fields = data["required_fields"][obj]
                series = {"canonical": [o["canonical"]["completeness"].get(f, {}).get("rate") for f in fields]}
                for sy, so in o["systems"].items():
                    series[sy] = [so["completeness"][f]["rate"] for f in fields]
                chart[obj] = {"labels": fields, "series": series}
            rev = data["revenue"]
            sources = {"canonical": rev["canonical"], **rev["systems"]}
            chart["revenue"] = {"labels": list(sources),
                                "open": [r["open_pipeline"]["amount"] for r in sources.values()],
                                "won": [sum(v["amount"] for v in r["closed_won"].values()) for r in sources.values()],
                                "arr": [r["arr"] for r in sources.values()]}
        return render(request, "quality.html", q=data, chart=chart, computing=data is None)

    @login_required
    async def quality_refresh(request: Request) -> Response:
        console.refresh_quality()
        console.audit.write(user(request), client(request), "quality_refresh")
        return RedirectResponse("/quality", status_code=303)

    # ------------------------------------------------------------------ definitions

    @login_required
    async def definitions(request: Request) -> Response:
        from mapping.definitions import defaults

        data = (console.definitions or defaults()).summary()
        sets = []
        for name, d in data.items():
            systems = sorted({sy for row in d["values"].values() for sy in row} | set(d["reads"]))
            rows = []
            for canonical, row in d["values"].items():
                also = {sy: sorted(n for n, c in d["reads"].get(sy, {}).items()
                                   if c == canonical and n != (row.get(sy) or "").casefold())
                        for sy in systems}
                rows.append({"canonical": canonical, "written": row, "also": also,
                             "pipelines": {sy: m[canonical] for sy, m in d.get("value_pipelines", {}).items()
                                           if canonical in m}})
            sets.append({"name": name, "systems": systems, "rows": rows, "retired": d["retired"],
                         "renamed": d["renamed"], "pipelines": d.get("pipelines", {})})
        return render(request, "definitions.html", sets=sets)

    @login_required
    async def audit(request: Request) -> Response:
        return render(request, "audit.html", entries=console.audit.tail(200))

    # ------------------------------------------------------------------ metrics

    registry = metrics.registry(console.store)

    async def metrics_endpoint(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token_ok = auth.lower().startswith("bearer ") and console.credentials.check(
            console.credentials.user, auth[7:].strip())
        if user(request) is None and not token_ok:
            return PlainTextResponse("login required (session or Authorization: Bearer <password>)",
                                     status_code=401)
        return Response(metrics.exposition(registry), media_type="text/plain; version=0.0.4")

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        resp = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.url.path.startswith("/static/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    from starlette.middleware.base import BaseHTTPMiddleware

    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", runs),
        Route("/errors", errors),
        Route("/errors/retry", errors_retry, methods=["POST"]),
        Route("/review", review),
        Route("/review/decide", review_decide, methods=["POST"]),
        Route("/plan", plan),
        Route("/explain", explain_search),
        Route("/explain/{ref:path}", explain),
        Route("/quality", quality),
        Route("/quality/refresh", quality_refresh, methods=["POST"]),
        Route("/definitions", definitions),
        Route("/audit", audit),
        Route("/metrics", metrics_endpoint),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return Starlette(routes=routes, middleware=[
        Middleware(SessionMiddleware, secret_key=secrets.token_urlsafe(32), max_age=session_seconds,
                   same_site="strict", https_only=https_only, session_cookie="revsync_session"),
        Middleware(BaseHTTPMiddleware, dispatch=headers),
    ])
