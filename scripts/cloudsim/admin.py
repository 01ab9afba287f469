"""The /_cloudsim/ admin API: clock, faults, request log, state, reset.
Unsigned, loopback only, never subject to faults, not in the request log."""

import json

from .common import Response, iso_z, json_bytes
from .faults import WHENS, parse_rates

LOOPBACK = ("127.", "::1", "::ffff:127.")


def _reply(status, obj):
    return Response(status, json_bytes(obj), [("Content-Type", "application/json")])


class AdminError(Exception):
    pass


def _body(req):
    if not req.body:
        return {}
    try:
        doc = json.loads(req.body)
    except ValueError as e:
        raise AdminError("malformed JSON: %s" % e)
    if not isinstance(doc, dict):
        raise AdminError("the body must be a JSON object")
    return doc


def handle(app, req):
    if not req.client.startswith(LOOPBACK):
        return _reply(403, {"error": "the admin API answers loopback clients only"})
    route = ROUTES.get((req.method, req.path.rstrip("/"))) or provider_route(app, req)
    if route is None:
        return _reply(404, {"error": "no admin operation %s %s" % (req.method, req.path)})
    try:
        return _reply(200, route(app, req))
    except LookupError:
        return _reply(404, {"error": "no admin operation %s %s" % (req.method, req.path)})
    except (AdminError, ValueError, TypeError) as e:
        return _reply(400, {"error": str(e)})


def provider_route(app, req):
    """/_cloudsim/<provider>/...: what a provider's admin(method, parts,
    body) answers (None: no such operation)."""
    parts = req.path.rstrip("/").split("/")[2:]
    admin = getattr(app.by_name.get(parts[0]) if parts else None, "admin", None)
    if admin is None:
        return None

    def route(app, req):
        doc = _body(req)
        with app.lock:
            app.tick_all()
            out = admin(req.method, parts[1:], doc)
            if out is None:
                raise LookupError
            app.dirty = True
        return out
    return route


def health(app, req):
    return {"ok": True}


def clock_get(app, req):
    app.tick_all()
    return clock_doc(app)


def clock_doc(app):
    snap = app.clock.snapshot()
    snap["sim_iso"] = iso_z(snap["sim"])
    return snap


def clock_post(app, req):
    doc = _body(req)
    if "speed" in doc:
        app.clock.set_speed(float(doc["speed"]))
    if "advance" in doc:
        app.clock.advance(float(doc["advance"]))
    app.tick_all()
    app.dirty = True
    return clock_doc(app)


def faults_doc(app):
    f = app.faults
    doc = {"scripted": f.pending(), "rates": dict(f.rates), "when": f.when,
           "slow_seconds": f.slow_seconds, "retry_after": f.retry_after}
    with f.lock:
        doc["seed"], doc["seeds"] = f.seed, dict(f.seeds)
    return doc


def faults_get(app, req):
    return faults_doc(app)


def faults_post(app, req):
    doc = _body(req)
    unknown = set(doc) - {"faults", "replace", "rates", "when", "seed", "seeds"}
    if unknown:
        raise AdminError("unknown field(s): " + ", ".join(sorted(unknown)))
    f = app.faults
    if "when" in doc:
        if doc["when"] not in WHENS:
            raise AdminError("when must be before, after or random")
    rates = parse_rates(doc["rates"]) if "rates" in doc else None
    entries = doc.get("faults", [])
    if not isinstance(entries, list):
        raise AdminError("faults must be a list")
    seed, seeds = f.check_seeds(doc.get("seed"), doc.get("seeds"))
    f.script(entries, replace=bool(doc.get("replace")))
    if seed is not None or seeds:
        f.reseed(seed, seeds)
    with f.lock:
        if rates is not None:
            f.rates = rates
        if "when" in doc:
            f.when = doc["when"]
    return faults_doc(app)


def faults_delete(app, req):
    app.faults.script([], replace=True)
    with app.faults.lock:
        app.faults.rates = []
    return faults_doc(app)


def requests_get(app, req):
    q = req.query_dict()
    since = int(q.get("since", 0))
    filters = {k: q[k] for k in ("provider", "operation", "method", "fault") if k in q}
    status = int(q["status"]) if "status" in q else None
    with app.lock:
        entries = list(app.log)
    out = [e for e in entries
           if e["seq"] > since
           and all(str(e[k]) == v for k, v in filters.items())
           and (status is None or e["status"] == status)]
    return {"requests": out, "count": len(out)}


def requests_delete(app, req):
    with app.lock:
        app.log.clear()
    return {"requests": [], "count": 0}


def state_get(app, req):
    app.tick_all()
    return app.snapshot()


def reset_post(app, req):
    app.reset()
    return {"ok": True}


ROUTES = {
    ("GET", "/_cloudsim/health"): health,
    ("GET", "/_cloudsim/clock"): clock_get,
    ("POST", "/_cloudsim/clock"): clock_post,
    ("GET", "/_cloudsim/faults"): faults_get,
    ("POST", "/_cloudsim/faults"): faults_post,
    ("DELETE", "/_cloudsim/faults"): faults_delete,
    ("GET", "/_cloudsim/requests"): requests_get,
    ("DELETE", "/_cloudsim/requests"): requests_delete,
    ("GET", "/_cloudsim/state"): state_get,
    ("POST", "/_cloudsim/reset"): reset_post,
}
