"""What every provider module shares: requests, responses, routing, errors,
time formats and deterministic pseudo-randomness."""

import datetime
import hashlib
import json
import re
from urllib.parse import unquote

UTC = datetime.timezone.utc


class Request:
    __slots__ = ("method", "target", "path", "query", "headers", "header_list",
                 "body", "client", "scheme", "_json")

    def __init__(self, method, target, header_list, body, client, scheme):
        self.method = method
        self.target = target
        path, _, self.query = target.partition("?")
        if path.startswith(("http://", "https://")):
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        self.path = path
        self.header_list = header_list
        headers = {}
        for name, value in header_list:
            name = name.lower()
            headers[name] = headers[name] + "," + value if name in headers else value
        self.headers = headers
        self.body = body
        self.client = client
        self.scheme = scheme
        self._json = None

    @property
    def base_url(self):
        """scheme://host as the client addressed us, for absolute links."""
        return "%s://%s" % (self.scheme, self.headers.get("host", "127.0.0.1"))

    def query_dict(self):
        out = {}
        if self.query:
            for part in self.query.split("&"):
                if part:
                    k, _, v = part.partition("=")
                    out[unquote(k.replace("+", " "))] = unquote(v.replace("+", " "))
        return out


class Response:
    __slots__ = ("status", "headers", "body", "action")

    def __init__(self, status, body=b"", headers=None, action=None):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        self.action = action   # None, "reset" or "truncate"


def json_bytes(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class ApiError(Exception):
    """A provider error; each provider renders it in its own body."""

    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class Ctx:
    """One request as a handler sees it."""
    __slots__ = ("req", "p", "q", "now", "provider")

    def __init__(self, req, params, now, provider):
        self.req = req
        self.p = params
        self.q = req.query_dict()
        self.now = now
        self.provider = provider

    def json(self):
        if self.req._json is None:
            try:
                self.req._json = json.loads(self.req.body or b"null")
            except ValueError as e:
                raise self.provider.bad_json(e)
        return self.req._json

    def body_object(self):
        body = self.json()
        if not isinstance(body, dict):
            raise self.provider.bad_json(ValueError("the body must be a JSON object"))
        return body


def compile_routes(prefix, table):
    """table rows: (METHOD, "/path/{param}/...", OperationName, handler).
    A {param} matches one path segment."""
    routes = []
    for method, pattern, op, handler in table:
        rx = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(prefix + pattern))
        routes.append((method, re.compile(rx + "$"), op, handler))
    return routes


def match_route(routes, method, path):
    """-> (operation, handler, params) or None. The path is matched decoded,
    so a client may percent-encode ':' or ' ' in names as it likes."""
    path = unquote(path)
    for m, rx, op, handler in routes:
        if m == method:
            hit = rx.match(path)
            if hit:
                return op, handler, hit.groupdict()
    return None


# --- time formats ---------------------------------------------------------

def dt(ts, tz=UTC):
    return datetime.datetime.fromtimestamp(ts, tz)


def iso_z(ts):
    """2022-04-18T15:44:44Z"""
    return dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_z7(ts):
    """2022-04-18T15:47:58.8190649Z (seven fractional digits, as .NET writes)"""
    d = dt(ts)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%07d" % (d.microsecond * 10) + "Z"


def iso_date(ts):
    return dt(ts).strftime("%Y-%m-%d")


def ms(ts):
    return int(round(ts * 1000))


# --- determinism ------------------------------------------------------------

def stable_hash(*parts):
    """A 64-bit integer from the parts; the same on every run and platform."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "big")


def stable_unit(*parts):
    """A float in [0, 1) from the parts."""
    return stable_hash(*parts) / 2.0 ** 64


class Provider:
    """Base of the provider modules. Subclasses set name, prefixes and
    routes and implement authenticate, render_error, fault_response and
    tick; options() adds their command-line flags, credentials names the
    environment variables they read (with the demo value used when unset).
    scripts/cloudsim/providers/__init__.py registers them."""
    name = ""
    prefixes = ()          # the path prefixes this cloud answers
    routes = ()
    credentials = {}       # environment variable -> demo value
    random_faults = True   # whether --faults rates apply to its requests

    @classmethod
    def options(cls, add):
        """Add this cloud's command-line flags with add (argparse's add_argument)."""

    @classmethod
    def serves(cls, path):
        return path.startswith(cls.prefixes)

    def __init__(self, app):
        self.app = app
        self.cfg = app.cfg
        self.data = self.empty()

    # state -------------------------------------------------------------
    def empty(self):
        return {}

    def dump(self):
        return self.data

    def load(self, data):
        self.data = data

    def tick(self, now):
        """Apply every lifecycle transition due by simulated time now."""

    # requests ------------------------------------------------------------
    def match(self, method, path):
        return match_route(self.routes, method, path)

    def authenticate(self, req):
        """None when the caller is allowed, else an error Response."""
        return None

    def handle(self, req, match):
        denied = self.authenticate(req)
        if denied is not None:
            return denied, False
        if match is None:
            return self.render_error(self.unknown_route(req), req), False
        op, handler, params = match
        app = self.app
        with app.lock:
            now = app.clock.sim()
            self.tick(now)
            try:
                resp = getattr(self, handler)(Ctx(req, params, now, self))
            except ApiError as e:
                return self.render_error(e, req), True
            if req.method != "GET":
                app.dirty = True
        return resp, True

    def unknown_route(self, req):
        return ApiError(404, "NotFound", "no such operation: %s %s" % (req.method, req.path))

    def bad_json(self, err):
        return ApiError(400, "InvalidRequest", "malformed JSON body: %s" % err)

    def render_error(self, err, req):
        return Response(err.status, json_bytes({"code": err.code, "message": err.message}),
                        [("Content-Type", "application/json")])

    def fault_response(self, req, status, retry_after):
        return self.render_error(ApiError(status, "Fault", "injected fault"), req)

    def ok(self, obj, status=200, headers=None):
        hs = [("Content-Type", self.content_type)]
        if headers:
            hs.extend(headers)
        return Response(status, json_bytes(obj), hs)

    content_type = "application/json"
