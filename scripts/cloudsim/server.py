"""The HTTP side: one loopback listener for all providers, fault application,
the request log and state persistence."""

import collections
import email.utils
import http.server
import json
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import uuid

from . import admin
from .clock import Clock
from .common import ApiError, Request, Response, json_bytes
from .faults import Faults
from . import providers

MAX_BODY = 64 << 20
SAVE_EVERY = 5.0
REASONS = {s.value: s.phrase for s in http.HTTPStatus}


class App:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lock = threading.RLock()
        self.clock = Clock(cfg.speed, cfg.start_time)
        self.rng = random.Random(cfg.seed)
        self.faults = Faults(cfg.faults, cfg.fault_when, cfg.seed, cfg.slow_seconds, cfg.retry_after)
        self.stop = threading.Event()
        self.dirty = False
        self.saved_at = time.monotonic()
        self.log = collections.deque(maxlen=cfg.log_limit)
        self.seq = 0
        self.log_file = open(cfg.log, "a", buffering=1 << 16) if cfg.log else None
        # One instance per registered cloud, in registry order: the first
        # whose serves() accepts a path answers it.
        self.providers = tuple(cls(self) for cls in providers.PROVIDERS)
        self.by_name = {p.name: p for p in self.providers}

    # ids ---------------------------------------------------------------------
    def rand_str(self, alphabet, n):
        with self.lock:
            return "".join(self.rng.choice(alphabet) for _ in range(n))

    def uuid(self):
        with self.lock:
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # routing -----------------------------------------------------------------
    def provider(self, name):
        """The running instance of a registered cloud, by its name."""
        return self.by_name[name]

    def provider_for(self, path):
        for p in self.providers:
            if p.serves(path):
                return p
        return None

    def dispatch(self, req):
        if req.path.startswith("/_cloudsim/"):
            return admin.handle(self, req)
        prov = self.provider_for(req.path)
        if prov is None:
            return Response(404, json_bytes({"error": "no provider serves " + req.path}),
                            [("Content-Type", "application/json")])
        match = prov.match(req.method, req.path)
        op = match[0] if match else "Unknown"
        fault = self.faults.pick(prov.name, op, req.method, req.path, prov.random_faults)
        wall, sim = self.clock.wall(), self.clock.sim()
        executed = False
        if fault and fault["when"] == "before":
            if fault["kind"] == "slow":
                self.stop.wait(fault["delay"])
                resp, executed = prov.handle(req, match)
            else:
                resp = self.fault(prov, req, fault, None)
        else:
            resp, executed = prov.handle(req, match)
            if fault:
                if fault["kind"] == "slow":
                    self.stop.wait(fault["delay"])
                else:
                    resp = self.fault(prov, req, fault, resp)
        self.record(wall, sim, prov.name, op, req, resp, fault, executed)
        return resp

    def fault(self, prov, req, fault, real):
        kind = fault["kind"]
        if kind == "reset":
            return Response(0, action="reset")
        if kind == "badjson":
            # A JSON document cut in half is never valid JSON.
            body = real.body if real is not None and len(real.body) > 2 else b'{"result":{"status":"ok"}}'
            return Response(200, body[:len(body) // 2], [("Content-Type", prov.content_type)])
        if kind == "truncate":
            base = real if real is not None and real.body else prov.ok({"result": "truncated"})
            return Response(base.status, base.body, base.headers, action="truncate")
        if kind == "echo":
            # A careless server quoting the request back, credentials
            # included: what a client must never print.
            return prov.render_error(ApiError(400, "Echo", echo_text(req)), req)
        return prov.fault_response(req, int(kind), fault["retry_after"])

    def record(self, wall, sim, provider, op, req, resp, fault, executed):
        entry = {"wall": round(wall, 6), "sim": round(sim, 3), "provider": provider,
                 "operation": op, "method": req.method, "path": req.path, "query": req.query,
                 "status": resp.status or None, "fault": fault["kind"] if fault else None,
                 "when": fault["when"] if fault else None, "executed": executed}
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            self.log.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")

    # state ---------------------------------------------------------------------
    def tick_all(self):
        with self.lock:
            now = self.clock.sim()
            for p in self.providers:
                p.tick(now)

    def snapshot(self):
        with self.lock:
            return {"format": 1, "clock": {"sim": self.clock.sim(), "advanced": self.clock.advanced},
                    "rng": _rng_to_json(self.rng.getstate()),
                    "providers": {p.name: p.dump() for p in self.providers}}

    def reset(self):
        with self.lock:
            self.rng = random.Random(self.cfg.seed)
            for p in self.providers:
                p.data = p.empty()
            self.log.clear()
            self.seq = 0
            self.dirty = True
        self.faults.reset()

    def load_state(self, path):
        with open(path) as f:
            doc = json.load(f)
        self.clock.resume_from(doc["clock"]["sim"], doc["clock"]["advanced"])
        self.rng.setstate(_rng_from_json(doc["rng"]))
        for p in self.providers:
            if p.name in doc["providers"]:
                p.load(doc["providers"][p.name])

    def save_state(self):
        if not self.cfg.state:
            return
        with self.lock:
            # Running the clock alone changes state too (lifecycles move on),
            # so a quiet emulator still saves now and then.
            if not self.dirty and time.monotonic() - self.saved_at < SAVE_EVERY:
                return
            self.dirty = False
            self.saved_at = time.monotonic()
            data = json.dumps(self.snapshot(), separators=(",", ":"))
        tmp = "%s.tmp.%d" % (self.cfg.state, os.getpid())
        with open(tmp, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.cfg.state)

    def background(self):
        """Saves state and flushes the log file twice a second."""
        while not self.stop.wait(0.5):
            self.flush()

    def flush(self):
        try:
            self.save_state()
            if self.log_file:
                with self.lock:
                    self.log_file.flush()
        except OSError as e:
            print("cloudsim: cannot save: %s" % e, file=sys.stderr)


def echo_text(req):
    """The request as received: request line, every header, the body."""
    lines = ["%s %s" % (req.method, req.target)]
    lines.extend("%s: %s" % (name, value) for name, value in req.header_list)
    return "\n".join(lines) + "\n\n" + (req.body or b"").decode("utf-8", "replace")


def _rng_to_json(state):
    return [state[0], list(state[1]), state[2]]


def _rng_from_json(doc):
    return (doc[0], tuple(doc[1]), doc[2])


# --- HTTP ---------------------------------------------------------------------

_date_cache = [0, ""]


def http_date():
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[:] = [now, email.utils.formatdate(now, usegmt=True)]
    return _date_cache[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120

    def handle_one_request(self):
        """A lean replacement for the stdlib parser: the email-based header
        parser costs more than everything else a request does here."""
        self.close_connection = True
        try:
            line = self.rfile.readline(65537)
            if not line:
                return
            if line in (b"\r\n", b"\n"):   # tolerated stray CRLF between requests
                self.close_connection = False
                return
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                return self.plain(400, "bad request line")
            method, target, version = parts
            headers = []
            for _ in range(200):
                h = self.rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, colon, value = h.decode("latin-1").partition(":")
                if not colon:
                    return self.plain(400, "bad header line")
                headers.append((name.strip(), value.strip()))
            else:
                return self.plain(431, "too many headers")
            conn = ""
            clen = te = expect = None
            for name, value in headers:
                n = name.lower()
                if n == "connection":
                    conn = value.lower()
                elif n == "content-length":
                    clen = value
                elif n == "transfer-encoding":
                    te = value.lower()
                elif n == "expect":
                    expect = value.lower()
            keep = ("keep-alive" in conn) if version == "HTTP/1.0" else ("close" not in conn)
            if expect == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if te and "chunked" in te:
                body = self.read_chunked()
            else:
                n = int(clen) if clen else 0
                if n < 0 or n > MAX_BODY:
                    return self.plain(413, "body too large")
                body = self.rfile.read(n) if n else b""
                if len(body) != n:
                    return
            req = Request(method, target, headers, body, self.client_address[0], self.server.scheme)
            try:
                resp = self.server.app.dispatch(req)
            except Exception:
                traceback.print_exc()
                resp = Response(500, b'{"error":"cloudsim internal error"}',
                                [("Content-Type", "application/json")])
            self.close_connection = not keep
            self.send(resp)
        except (OSError, ValueError, ssl.SSLError):
            self.close_connection = True

    def read_chunked(self):
        chunks = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise ValueError("body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def plain(self, status, msg):
        self.close_connection = True
        self.send(Response(status, json_bytes({"error": msg}), [("Content-Type", "application/json")]))

    def send(self, resp):
        if resp.action == "reset":
            return self.reset()
        body = resp.body
        length = len(body)
        if resp.action == "truncate":
            length = len(body) + max(16, len(body))
            body = body[:len(body) // 2]
            self.close_connection = True
        head = ["HTTP/1.1 %d %s\r\nDate: %s\r\n" % (resp.status, REASONS.get(resp.status, "Unknown"), http_date())]
        if resp.status != 204:   # RFC 9110 8.6: no Content-Length on 204
            head.append("Content-Length: %d\r\n" % length)
        for k, v in resp.headers:
            head.append("%s: %s\r\n" % (k, v))
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        self.wfile.write("".join(head).encode("latin-1") + body)

    def reset(self):
        """Abort with a TCP RST: linger 0, then close every reference."""
        self.close_connection = True
        sock = self.request
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            sock.close()
        except OSError:
            pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, port, app, ssl_ctx=None):
        self.app = app
        self.ssl_ctx = ssl_ctx
        self.scheme = "https" if ssl_ctx else "http"
        super().__init__(("127.0.0.1", port), Handler)

    def finish_request(self, request, client_address):
        if self.ssl_ctx is None:
            return super().finish_request(request, client_address)
        # The handshake runs here, in the connection's thread, so one slow
        # client cannot hold up the accept loop.
        try:
            request.settimeout(30)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        pass
