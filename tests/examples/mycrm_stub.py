"""A tiny MyCRM REST API on 127.0.0.1 (the API ``examples/mycrm`` documents).

Keyset paging on (updated_at, id) with an opaque ``next`` token, an inclusive
``since``, soft deletes, a 50-record batch limit, per-item validation errors, OAuth
client-credentials tokens that can be expired, and scripted faults (429 with
``Retry-After``, 500, expired token) on the next N read calls.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

BATCH_MAX = 50
COLLECTIONS = ("orgs", "people")
REQUIRED = {"orgs": "name", "people": "email"}
CLIENT = ("mycrm-client", "mycrm-secret")


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _key(rec: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(rec["updated_at"].replace("Z", "+00:00")), rec["id"]


class MyCrmStub:
    """The stub's data and faults; ``url`` once started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in COLLECTIONS}
        self.tokens: set[str] = set()
        self.faults: list[str] = []  # applied to the next read calls, in order
        self.write_calls = 0
        self.reads = 0
        self._next = 1
        self.url = ""

    # ------------------------------------------------------------ test control
    def add(self, collection: str, fields: dict[str, Any], *, updated_at: datetime | None = None) -> str:
        with self.lock:
            return self._insert(collection, fields, updated_at or datetime.now(UTC))

    def _insert(self, collection: str, fields: dict[str, Any], when: datetime) -> str:
        rid = f"{collection[:3]}_{self._next:06d}"
        self._next += 1
        self.data[collection][rid] = {**fields, "id": rid, "created_at": _iso(when), "updated_at": _iso(when),
                                      "deleted_at": None}
        return rid

    def delete(self, collection: str, rid: str) -> None:
        with self.lock:
            rec = self.data[collection][rid]
            rec["deleted_at"] = rec["updated_at"] = _iso(datetime.now(UTC))

    def live(self, collection: str) -> list[dict[str, Any]]:
        return [r for r in self.data[collection].values() if not r["deleted_at"]]

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # ------------------------------------------------------------ HTTP
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path.strip("/").split("/")
        if path == ["oauth", "token"]:
            body = request.get_json(silent=True) or {}
            if (body.get("client_id"), body.get("client_secret")) != CLIENT:
                return _json({"error": "invalid_client"}, 401)
            token = secrets.token_urlsafe(16)
            with self.lock:
                self.tokens.add(token)
            return _json({"access_token": token, "expires_in": 3600})
        if request.method == "GET" and self.faults:
            with self.lock:
                fault = self.faults.pop(0) if self.faults else None
            if fault == "rate_limit":
                return _json({"error": "rate_limited"}, 429, {"Retry-After": "0"})
            if fault == "server_error":
                return _json({"error": "internal"}, 500)
            if fault == "expired_token":
                self.expire_tokens()
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return _json({"error": "token_expired"}, 401)
        if len(path) >= 2 and path[0] == "v1" and path[1] in COLLECTIONS:
            coll = path[1]
            if request.method == "GET" and len(path) == 2:
                return self._list(coll, request)
            if request.method == "POST" and path[2:] == ["batch"]:
                return self._batch(coll, request)
            if request.method == "DELETE" and len(path) == 3 and path[2] in self.data[coll]:
                self.delete(coll, path[2])
                return Response(status=204)
        return _json({"error": "not_found"}, 404)

    def _list(self, coll: str, request: Request) -> Response:
        self.reads += 1
        limit = min(int(request.args.get("limit", 100)), 200)
        since = request.args.get("since")
        deleted = request.args.get("include_deleted") == "true"
        token = request.args.get("next")
        with self.lock:
            recs = sorted((r for r in self.data[coll].values() if deleted or not r["deleted_at"]), key=_key)
        if since:
            floor = datetime.fromisoformat(since.replace("Z", "+00:00"))
            recs = [r for r in recs if _key(r)[0] >= floor]
        if token:
            stamp, rid = json.loads(base64.urlsafe_b64decode(token))
            after = (datetime.fromisoformat(stamp), rid)
            recs = [r for r in recs if _key(r) > after]
        page = recs[:limit]
        nxt = None
        if len(recs) > limit:
            last = _key(page[-1])
            nxt = base64.urlsafe_b64encode(json.dumps([last[0].isoformat(), last[1]]).encode()).decode()
        return _json({"items": page, "next": nxt})

    def _batch(self, coll: str, request: Request) -> Response:
        self.write_calls += 1
        items = (request.get_json(silent=True) or {}).get("upsert")
        if not isinstance(items, list):
            return _json({"error": "upsert must be a list"}, 400)
        if len(items) > BATCH_MAX:
            return _json({"error": f"at most {BATCH_MAX} records per batch"}, 413)
        out: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        with self.lock:
            for item in items:
                target = self.data[coll].get(item.get("id") or "")
                if target is None and item.get("revsync_id"):
                    target = next((r for r in self.data[coll].values()
                                   if r.get("revsync_id") == item["revsync_id"]), None)
                need = REQUIRED[coll]  # required on create; an update may not blank it
                if (target is None and not item.get(need)) or (need in item and not item[need]):
                    out.append({"error": {"code": "required", "field": need, "message": f"{need} is required"}})
                    continue
                if target is None:
                    rid = self._insert(coll, {k: v for k, v in item.items() if k != "id"}, now)
                    out.append({"id": rid, "created": True})
                else:
                    target.update({k: v for k, v in item.items() if k != "id"})
                    target["updated_at"] = _iso(now)
                    out.append({"id": target["id"], "created": False})
        return _json({"results": out})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


@contextmanager
def serve(stub: MyCrmStub) -> Iterator[MyCrmStub]:
    """Serve ``stub`` on a free 127.0.0.1 port for the block."""
    server = make_server("127.0.0.1", 0, stub, threaded=True)
    stub.url = f"http://127.0.0.1:{server.server_port}"
    # a short poll: ``shutdown()`` waits for the loop's next poll (0.5 s by default)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        thread.join(5)
