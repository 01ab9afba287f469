"""A loopback HTTP server that answers what a careless or hostile server
may: a secret placed across the places where a client cuts text, and
error messages made to forge log lines and move the cursor. Prints its
port on the first line. The secret is its one argument. The first path
segments pick the answer; the rest of the path is ignored, so a client's
endpoint can point at it.

  /pad/N/T/...                 200 JSON, T bytes, the secret at byte N
  /html/N/...                  400 text/html, the secret at byte N
  /forge/...                   400 in the AiTEMS gateway envelope; code and
                               message carry newlines, a forged log line,
                               ANSI escapes and a carriage return
  /auth/...                    401 in the AiTEMS gateway envelope (code 200)
"""

import http.server
import json
import socketserver
import sys
from urllib.parse import urlsplit

FORGED = ("\n2026-01-01T00:00:00Z info  all trainings succeeded\x1b[2J\x1b[1A\r"
          "\x1b]0;owned\x07\u009b31m")


def padded(prefix, secret, at, total, suffix):
    """prefix + filler, secret at byte `at`, filler + suffix to `total` bytes."""
    head = prefix + "x" * max(0, at - len(prefix))
    tail = "x" * max(0, total - len(head) - len(secret) - len(suffix))
    return (head + secret + tail + suffix).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        words = url.path.strip("/").split("/") + ["0", "0"]
        mode, secret = words[0], sys.argv[1]
        if mode == "pad":
            self.send(200, padded('{"pad":"', secret, int(words[1]), int(words[2]), '"}'))
        elif mode == "html":
            self.send(400, padded("<html>", secret, int(words[1]), int(words[1]) + 400, "</html>"),
                      "text/html")
        elif mode == "forge":
            body = {"error": {"errorCode": "300\x1b[31m\nFORGED", "message": "Bad request" + FORGED}}
            self.send(400, json.dumps(body).encode(), headers=[("X-Request-Id", "req\x1b[2Jid")])
        elif mode == "auth":
            body = {"error": {"errorCode": "200", "message": "Authentication Failed"}}
            self.send(401, json.dumps(body).encode())
        else:
            self.send(404, b'{"error":"not found"}')

    do_POST = do_GET
    do_DELETE = do_GET
    do_PUT = do_GET


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
