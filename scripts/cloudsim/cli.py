"""Command line of cloudsim."""

import argparse
import datetime
import os
import signal
import ssl
import sys
import threading

from .faults import parse_rates
from . import providers
from .server import App, Server

def demo_credentials():
    """Every registered cloud's environment variables and demo values."""
    out = {}
    for cls in providers.PROVIDERS:
        out.update(cls.credentials)
    return out


def credentials(env=os.environ):
    return {k: env.get(k) or v for k, v in demo_credentials().items()}


def _time(value):
    try:
        return float(value)
    except ValueError:
        d = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if d.tzinfo is None:
            d = d.replace(tzinfo=datetime.timezone.utc)
        return d.timestamp()


def _rates(value):
    try:
        parse_rates(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))
    return value


def parser():
    ap = argparse.ArgumentParser(
        prog="cloudsim", description="Local emulator of NAVER Cloud AiTEMS, Alibaba Cloud "
        "OpenSearch algorithm functions and Azure AI Language text authoring.")
    a = ap.add_argument
    a("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    a("--port-file", help="write the port number to this file once listening")
    a("--speed", type=float, default=1.0, help="simulated seconds per wall second (0 freezes the clock)")
    a("--seed", type=int, default=0, help="seed for ids, results and random faults")
    a("--start-time", type=_time, help="simulated time to start at (epoch seconds or ISO 8601)")
    a("--state", help="persist state in this JSON file across restarts")
    a("--data-dir", default=".", help="where AiTEMS dataset files and Azure documents are read from")
    a("--tls-cert", help="serve HTTPS with this PEM certificate")
    a("--tls-key", help="private key for --tls-cert")
    a("--quiet", action="store_true", help="print nothing but the listening line")
    a("--log", help="append every request to this file as JSON lines")
    a("--log-limit", type=int, default=100000, help="requests kept for GET /_cloudsim/requests")
    a("--faults", type=_rates, default="", help='random fault rates, e.g. "500:0.05,reset:0.02"')
    a("--fault-when", choices=("before", "after", "random"), default="random",
      help="whether a fault on a mutating request comes before or after its state change")
    a("--slow-seconds", type=float, default=30.0, help="delay of a 'slow' fault")
    a("--retry-after", type=float, default=1.0, help="Retry-After seconds on injected 429 and 503")
    # Each cloud's own flags, from its module.
    for cls in providers.PROVIDERS:
        cls.options(a)
    return ap


def main(argv=None):
    cfg = parser().parse_args(argv)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        parser().error("--tls-cert and --tls-key go together")
    cfg.credentials = credentials()
    cfg.data_dir = os.path.abspath(cfg.data_dir)
    ssl_ctx = None
    if cfg.tls_cert:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    try:
        app = App(cfg)
    except OSError as e:
        print("cloudsim: cannot open the log: %s" % e, file=sys.stderr)
        return 1
    if cfg.state and os.path.exists(cfg.state):
        try:
            app.load_state(cfg.state)
        except (OSError, ValueError, KeyError, TypeError) as e:
            print("cloudsim: cannot load state from %s: %s" % (cfg.state, e), file=sys.stderr)
            return 1
    try:
        httpd = Server(cfg.port, app, ssl_ctx)
    except OSError as e:
        print("cloudsim: cannot listen on 127.0.0.1:%d: %s" % (cfg.port, e), file=sys.stderr)
        return 1
    def stop(signum, frame):
        app.stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    # Handlers and the port file come first: whoever reads the listening
    # line may signal us or read the file at once.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = httpd.server_address[1]
    if cfg.port_file:
        tmp = cfg.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, cfg.port_file)
    print("cloudsim listening on %s://127.0.0.1:%d" % (httpd.scheme, port), flush=True)
    if not cfg.quiet:
        print("cloudsim: speed %g, seed %d, data dir %s%s" % (
            cfg.speed, cfg.seed, cfg.data_dir, ", faults " + cfg.faults if cfg.faults else ""),
            file=sys.stderr, flush=True)
    saver = threading.Thread(target=app.background, daemon=True)
    saver.start()
    try:
        httpd.serve_forever(poll_interval=0.25)
    finally:
        app.stop.set()
        httpd.server_close()
        app.flush()
        if app.log_file:
            app.log_file.close()
    return 0
