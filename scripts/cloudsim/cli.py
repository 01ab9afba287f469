"""Command line of cloudsim."""

import argparse
import datetime
import os
import signal
import ssl
import sys
import threading

from .faults import parse_rates
from .server import App, Server

# Documented demo credentials, used where the environment has none.
DEMO_CREDENTIALS = {
    "NCLOUD_ACCESS_KEY": "cloudsim-ncp-access-key",
    "NCLOUD_SECRET_KEY": "cloudsim-ncp-secret-key",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "cloudsim-acs-key-id",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "cloudsim-acs-key-secret",
    "AZURE_LANGUAGE_KEY": "cloudsim-azure-language-key",
    "AZURE_TENANT_ID": "cloudsim-tenant",
    "AZURE_CLIENT_ID": "cloudsim-client-id",
    "AZURE_CLIENT_SECRET": "cloudsim-client-secret",
}


def credentials(env=os.environ):
    return {k: env.get(k) or v for k, v in DEMO_CREDENTIALS.items()}


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


def _azure_limits(value):
    limits = {"write": 10, "read": 100, "runtime": 1000}
    if value not in ("", "default"):
        for part in value.split(","):
            k, _, v = part.partition("=")
            if k.strip() not in limits or not v.strip().isdigit():
                raise argparse.ArgumentTypeError("expected write=N,read=N,runtime=N")
            limits[k.strip()] = int(v)
    return limits


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
    a("--token-ttl", type=int, default=3599, help="lifetime of Entra ID tokens, seconds")
    a("--azure-rate-limits", nargs="?", const="default", type=_azure_limits,
      help="enforce Azure's per-minute limits: write=10,read=100,runtime=1000 unless given")
    a("--azure-page-size", type=int, default=50, help="Azure list page size when maxpagesize is absent")
    a("--azure-401-style", choices=("apim", "spec"), default="apim",
      help="body of Azure 401s: the API Management form or the spec's ErrorResponse")
    a("--azure-location-header", action="store_true",
      help="send Location beside Operation-Location on Azure 202s")
    a("--azure-poll-retry-after", type=int, default=None,
      help="Retry-After seconds on Azure 202s and on polls of running jobs (default: none; 0 is sent)")
    a("--azure-strict-enums", action="store_true",
      help="reject enum values (projectKind, dataset) not spelled exactly as in the spec")
    a("--opensearch-keys", choices=("pascal", "camel"), default="pascal",
      help="key casing of OpenSearch function responses")
    a("--opensearch-error-status", choices=("4xx", "200"), default="4xx",
      help="HTTP status of OpenSearch business errors: the error's own or 200")
    a("--acs-throttle-status", type=int, choices=(400, 429, 503), default=400,
      help="HTTP status of Alibaba Cloud throttling (code Throttling.User)")
    a("--acs-signature-status", type=int, choices=(400, 403), default=400,
      help="HTTP status of Alibaba Cloud SignatureDoesNotMatch")
    a("--aitems-timezone", choices=("kst", "utc"), default="kst",
      help="time zone of AiTEMS dates, which carry no offset")
    a("--aitems-create-status", type=int, choices=(200, 201), default=201,
      help="HTTP status of AiTEMS POST-create operations")
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
