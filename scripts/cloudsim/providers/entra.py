"""Microsoft Entra ID: the client-credentials token endpoint
POST /{tenant}/oauth2/v2.0/token, issuing bearer tokens for Azure Language."""

import base64
import datetime
import json
import secrets
import uuid
from urllib.parse import parse_qsl

from ..common import ApiError, Provider, Response, json_bytes

SCOPE = "https://cognitiveservices.azure.com/.default"
AUDIENCE = "https://cognitiveservices.azure.com"
SHARED_TENANTS = ("common", "organizations", "consumers")


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Entra(Provider):
    name = "entra"
    credentials = {"AZURE_TENANT_ID": "cloudsim-tenant", "AZURE_CLIENT_ID": "cloudsim-client-id",
                   "AZURE_CLIENT_SECRET": "cloudsim-client-secret"}
    random_faults = False   # token requests meet scripted faults only

    @classmethod
    def options(cls, a):
        a("--token-ttl", type=int, default=3599, help="lifetime of Entra ID tokens, seconds")

    @classmethod
    def serves(cls, path):
        return path.endswith("/oauth2/v2.0/token") and path.count("/") == 4


    def empty(self):
        return {"tokens": {}}

    def match(self, method, path):
        tenant = path.split("/")[1]
        if method == "POST":
            return "Token", "token", {"tenant": tenant}
        return None

    def unknown_route(self, req):
        return ApiError(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.",
                        codes=[900561])

    def render_error(self, err, req):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        code = err.extra.get("codes", [0])[0]
        desc = "%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s" % (err.message, trace, corr, now)
        body = {"error": err.code, "error_description": desc, "error_codes": err.extra.get("codes", []),
                "timestamp": now, "trace_id": trace, "correlation_id": corr,
                "error_uri": "https://login.microsoftonline.com/error?code=%d" % code}
        headers = [("Content-Type", "application/json; charset=utf-8")]
        if err.status in (429, 503):
            headers.append(("Retry-After", "%d" % max(1, round(err.extra.get("retry_after", 1)))))
        return Response(err.status, json_bytes(body), headers)

    def fault_response(self, req, status, retry_after):
        return self.render_error(ApiError(
            status, "temporarily_unavailable",
            "AADSTS90055: The service is temporarily unavailable. Please try again later.",
            codes=[90055], retry_after=retry_after), req)

    def token(self, ctx):
        creds = self.cfg.credentials
        tenant = ctx.p["tenant"]
        ctype = ctx.req.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" not in ctype:
            raise ApiError(400, "invalid_request", "AADSTS900144: The request body must contain the "
                           "following parameter: 'grant_type'.", codes=[900144])
        form = dict(parse_qsl(ctx.req.body.decode("utf-8", "replace"), keep_blank_values=True))
        auth = ctx.req.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            # RFC 6749 2.3.1: client credentials in HTTP Basic.
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
                form.setdefault("client_id", cid)
                form.setdefault("client_secret", secret)
            except ValueError:
                pass
        if tenant in SHARED_TENANTS:
            raise ApiError(400, "invalid_request", "AADSTS9001023: The grant type 'client_credentials' "
                           "is not supported over the /%s endpoint." % tenant, codes=[9001023])
        if tenant != creds["AZURE_TENANT_ID"]:
            raise ApiError(400, "invalid_request", "AADSTS90002: Tenant '%s' not found. Check to make sure "
                           "you have the correct tenant ID and are signing into the correct cloud." % tenant,
                           codes=[90002])
        for field in ("grant_type", "client_id", "scope"):
            if not form.get(field):
                raise ApiError(400, "invalid_request", "AADSTS900144: The request body must contain the "
                               "following parameter: '%s'." % field, codes=[900144])
        if form["grant_type"] != "client_credentials":
            raise ApiError(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported "
                           "grant type '%s'." % form["grant_type"], codes=[70003])
        if form["client_id"] != creds["AZURE_CLIENT_ID"]:
            raise ApiError(400, "unauthorized_client", "AADSTS700016: Application with identifier '%s' was "
                           "not found in the directory '%s'." % (form["client_id"], tenant), codes=[700016])
        if not form.get("client_secret"):
            raise ApiError(401, "invalid_client", "AADSTS7000216: 'client_assertion', 'client_secret' or "
                           "'request' is required for the 'client_credentials' grant type.", codes=[7000216])
        if form["client_secret"] != creds["AZURE_CLIENT_SECRET"]:
            raise ApiError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the "
                           "secret being sent in the request is the client secret value, not the client "
                           "secret ID, for a secret added to app '%s'." % form["client_id"], codes=[7000215])
        if form["scope"] != SCOPE:
            raise ApiError(400, "invalid_scope", "AADSTS70011: The provided request must include a 'scope' "
                           "input parameter. The provided value for the input parameter 'scope' is not "
                           "valid. The scope %s is not valid." % form["scope"], codes=[70011])
        return self.ok(self.issue(form["client_id"], tenant))

    def issue(self, client_id, tenant):
        ttl = self.cfg.token_ttl
        now = self.app.clock.real()
        claims = {"aud": AUDIENCE, "iss": "https://sts.windows.net/%s/" % tenant, "iat": int(now),
                  "nbf": int(now), "exp": int(now + ttl), "appid": client_id, "tid": tenant,
                  "oid": str(uuid.uuid4()), "jti": str(uuid.uuid4())}
        token = ".".join([_b64url(b'{"typ":"JWT","alg":"RS256"}'),
                          _b64url(json.dumps(claims, separators=(",", ":")).encode()),
                          _b64url(secrets.token_bytes(32))])
        tokens = self.data["tokens"]
        for t in [t for t, exp in tokens.items() if exp <= now]:
            del tokens[t]
        tokens[token] = now + ttl
        return {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": token}

    def valid(self, token):
        """Whether a bearer token was issued here and has not expired."""
        exp = self.data["tokens"].get(token)
        return exp is not None and self.app.clock.real() < exp
