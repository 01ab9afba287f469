#!/usr/bin/env python3
"""A loopback HTTP/1.1 server for the event loop tests.

Prints its port on the first line, then serves until killed or until its
parent goes away.

  /fast         200 "ok"
  /slow?s=N     answers after N seconds (default 30); gives up early when
                the client closes the connection
  /stats        JSON: requests (all but /stats), slow_started,
                slow_aborted (clients that hung up mid-wait), open (TCP
                connections open now), max_open (the most at once)
"""
import json
import os
import select
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

lock = threading.Lock()
stats = {"requests": 0, "slow_started": 0, "slow_aborted": 0, "open": 0, "max_open": 0}


def count(key, n=1):
    with lock:
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
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        count("open")

    def finish(self):
        try:
            super().finish()
        finally:
            count("open", -1)

    def log_message(self, *args):
        pass

    def reply(self, body, ctype="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/stats":
            with lock:
                body = json.dumps(stats).encode()
            return self.reply(body, "application/json")
        count("requests")
        if url.path == "/fast":
            return self.reply(b"ok")
        if url.path == "/slow":
            seconds = float(parse_qs(url.query).get("s", ["30"])[0])
            count("slow_started")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if client_gone(self.connection):
                    count("slow_aborted")
                    self.close_connection = True
                    return
                time.sleep(0.02)
            return self.reply(b"slow")
        self.send_error(404)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 2048


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
