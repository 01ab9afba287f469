#!/usr/bin/env python3
"""The loopback HTTP/1.1 server of the host, loop and integration specs.

Prints one line, "<port> <closed-port>", then serves until killed (or until
its parent goes away). <closed-port> was bound and released at start-up, so
nothing listens there: connecting to it is refused.

  /echo            the request as received, as JSON (method, path, headers
                   in order, body as latin-1 text, body_sha256)
  /status/NNN      status NNN, body "status NNN"
  /chunked?n=K     K chunks with Transfer-Encoding: chunked
  /bytes?n=N       N bytes ('0123456789' repeated); &chunked=1 to stream
  /redirect        302 to /echo?from=redirect
  /headers         repeated and mixed-case response headers
  /hang            never answers; /hang-body sends half a body, then waits
  /connections     how many TCP connections were accepted so far
  /close           answers with Connection: close and closes
  /fast            200 "ok"
  /slow?s=N        answers after N seconds (default 30); gives up early when
                   the client closes the connection
  /stats           JSON: requests (all but /stats), slow_started,
                   slow_aborted (clients that hung up mid-wait), open (TCP
                   connections open now), max_open (the most at once)
  /nextlink/P      an Azure list page whose nextLink is P again (a client
                   with the endpoint .../nextlink asks for this page again):
                   a service paging in a loop

With --tls CERT KEY it speaks HTTPS instead.
"""
import hashlib
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

connections = 0
counter_lock = threading.Lock()
stop = threading.Event()
stats = {"requests": 0, "slow_started": 0, "slow_aborted": 0, "open": 0, "max_open": 0}


def count(key, n=1):
    with counter_lock:
        stats[key] += n
        if key == "open":
            stats["max_open"] = max(stats["max_open"], stats["open"])


def client_gone(sock):
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes

    def setup(self):
        global connections
        with counter_lock:
            connections += 1
        super().setup()
        count("open")

    def finish(self):
        try:
            super().finish()
        finally:
            count("open", -1)

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, status, body, ctype="text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def send_chunks(self, chunks):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for c in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def handle_any(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.read_body()
        p = url.path
        if p != "/stats":
            count("requests")
        if p == "/stats":
            with counter_lock:
                doc = json.dumps(stats).encode()
            self.send(200, doc, "application/json")
        elif p == "/fast":
            self.send(200, b"ok")
        elif p == "/slow":
            self.slow(float(q.get("s", "30")))
        elif p.startswith("/nextlink/"):
            # the link a service gives: from its root, without the prefix
            # that routes the client here
            link = "http://127.0.0.1:%d%s" % (self.server.server_address[1], p[len("/nextlink"):])
            doc = {"value": [{"projectName": "x"}], "nextLink": link + "?skip=1&api-version=2023-04-01"}
            self.send(200, json.dumps(doc).encode(), "application/json")
        elif p == "/echo":
            doc = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
                "body_sha256": hashlib.sha256(body).hexdigest(),
            }
            self.send(200, json.dumps(doc).encode(), "application/json")
        elif p.startswith("/status/"):
            code = int(p[len("/status/"):])
            self.send(code, b"status %d" % code, extra=[("X-Status", str(code))])
        elif p == "/chunked":
            n = int(q.get("n", "3"))
            self.send_chunks([b"chunk %d\n" % i for i in range(n)])
        elif p == "/bytes":
            n = int(q.get("n", "0"))
            data = (b"0123456789" * (n // 10 + 1))[:n]
            if q.get("chunked"):
                self.send_chunks([data[i:i + 65536] for i in range(0, n, 65536)])
            else:
                self.send(200, data, "application/octet-stream")
        elif p == "/redirect":
            self.send(302, b"redirecting", extra=[("Location", "/echo?from=redirect")])
        elif p == "/headers":
            self.send(200, b"ok", extra=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
                                         ("X-Mixed-Case", "Value"), ("X-Empty", "")])
        elif p == "/hang":
            stop.wait()
        elif p == "/hang-body":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 50)
            self.wfile.flush()
            stop.wait()
        elif p == "/connections":
            self.send(200, str(connections).encode())
        elif p == "/close":
            self.close_connection = True
            self.send(200, b"closing", extra=[("Connection", "close")])
        else:
            self.send(404, b"no such path")

    def slow(self, seconds):
        count("slow_started")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if client_gone(self.connection):
                count("slow_aborted")
                self.close_connection = True
                return
            time.sleep(0.02)
        self.send(200, b"slow")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def watch_parent():
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048


def main():
    server = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=watch_parent, daemon=True).start()
    print(server.server_address[1], closed_port(), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
