"""Gets client-credentials tokens from the emulator with MSAL for Python,
as an application would; run by an interpreter that has MSAL (Debian's
python3-msal installs it for /usr/bin/python3). Argument: a JSON object
{base, cert, tenant, client_id, secret, scopes, validate_authority,
times}. Prints {"results": [...], "seen": [[method, url, params], ...]} or
{"error": "..."}."""

import json
import sys
import urllib.parse

import msal
import requests

WORLD_WIDE = "login.microsoftonline.com"


class Redirecting(requests.Session):
    """login.microsoftonline.com is the emulator, as a hosts-file entry would
    make it: MSAL asks that host (and no other) for instance discovery."""

    def __init__(self, base, cert):
        super().__init__()
        self.base = base
        self.verify = cert
        self.seen = []

    def request(self, method, url, *args, **kwargs):
        u = urllib.parse.urlsplit(url)
        if u.hostname == WORLD_WIDE:
            url = self.base + url[len("https://" + u.netloc):]
        self.seen.append([method, url, kwargs.get("params") or {}])
        # Explicitly: requests prefers REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE to the session's.
        kwargs["verify"] = self.verify
        return super().request(method, url, *args, **kwargs)


def main():
    a = json.loads(sys.argv[1])
    http = Redirecting(a["base"], a["cert"])
    out = {"seen": http.seen, "results": []}
    try:
        app = msal.ConfidentialClientApplication(
            a["client_id"], client_credential=a["secret"], authority="%s/%s" % (a["base"], a["tenant"]),
            http_client=http, validate_authority=a.get("validate_authority", True))
        for _ in range(a.get("times", 1)):
            out["results"].append(app.acquire_token_for_client(scopes=a["scopes"]))
    except ValueError as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
