"""A loopback HTTP server that answers with what a client must bound:
bodies of any size, JSON nested to any depth, many or long headers, and
Retry-After values of any shape. Prints its port on the first line.

  /big?n=N                 200, a JSON string N bytes long
  /deep?n=N                200, N nested JSON arrays around a 1
  /headers?n=N             200 {}, N extra headers
  /longheader?n=N&count=C  200 {}, C headers (default 1) N bytes long
  /retry?name=H&value=V    first call 503 with header H: V, then 200 {}
                           (each distinct query counts on its own)
"""

import http.server
import socketserver
import sys
from urllib.parse import parse_qs, urlsplit

calls = {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body=b"{}", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        chunk = 1 << 20
        for i in range(0, len(body), chunk):
            self.wfile.write(body[i:i + chunk])

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        n = int(q.get("n", "0"))
        if url.path == "/big":
            self.send(200, b'"' + b"x" * max(0, n - 2) + b'"')
        elif url.path == "/deep":
            self.send(200, b"[" * n + b"1" + b"]" * n)
        elif url.path == "/headers":
            self.send(200, headers=[("X-H-%d" % i, "v") for i in range(n)])
        elif url.path == "/longheader":
            count = int(q.get("count", "1"))
            self.send(200, headers=[("X-Long-%d" % i, "v" * n) for i in range(1, count + 1)])
        elif url.path == "/retry":
            calls[url.query] = calls.get(url.query, 0) + 1
            if calls[url.query] == 1:
                self.send(503, b'{"error":"busy"}', [(q["name"], q["value"])])
            else:
                self.send(200)
        else:
            self.send(404, b'{"error":"not found"}')

    do_POST = do_GET


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
