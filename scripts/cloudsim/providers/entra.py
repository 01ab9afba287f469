"""Microsoft Entra ID as Microsoft's identity libraries (MSAL, and
azure-identity on top of it) use it for the client-credentials flow:

  GET  /common/discovery/instance?authorization_endpoint=URL&api-version=1.1
       instance discovery (authority validation), the answer naming the
       tenant's OpenID configuration document
  GET  /{tenant}/v2.0/.well-known/openid-configuration
       that document: issuer, token_endpoint, jwks_uri... pointing back here
  GET  /{tenant}/discovery/v2.0/keys
       the signing keys the document names (jwks_uri)
  POST /{tenant}/oauth2/v2.0/token
       client credentials with scope, issuing bearer tokens for Azure Language.

Every URL in these answers is built from the scheme and Host the client
addressed, so a library pointed at the emulator stays on it."""

import base64
import datetime
import json
import secrets
import uuid
from urllib.parse import parse_qsl, urlsplit

from ..common import ApiError, Provider, Response, json_bytes

SCOPE = "https://cognitiveservices.azure.com/.default"
AUDIENCE = "https://cognitiveservices.azure.com"
SHARED_TENANTS = ("common", "organizations", "consumers")


# The public half of the key the JWKS lists (2048-bit RSA, e = 65537). The
# emulator keeps no private key: tokens are opaque to their clients and
# checked here by lookup, so their signature part is random bytes.
KEY_ID = "cloudsim-key-1"
KEY_N = ("zjONG7o8EwMPlILKo8m0WX0Z7y5ZdP5iqbuNFCMEwVC7Rk1-q7fTApgvxfJkriXydbsgFmA1uLaSC3YUGUzeSYiuPUnWez7vmkx8-"
         "M3f4v2Flu5_Sb2P0nDHYGVwCkVyW9t4pBDiEEjVZE0Zf4hHB7rKVGhjndsl-oW_3XSLQEC18RrJrpyVAQMU3EjIVx5nBMHQsvUJwtat"
         "9Ec30uYleZK-VZ-vSoY9-H1EutKZETUlJE53Zu9LP7A9lK_XwceTJrBal3G31OBd3nayYl9kFlD9iQEB-kd_hCw9Vtgxi1pu6Pz6k_Lu"
         "JuI2jnmDH_33gJXTN1dvqg0-rLN9W6S1yQ")

# GET paths by their segments: (segment count, fixed segments by index) -> operation.
DOCUMENTS = (
    ("InstanceDiscovery", 3, {0: "common", 1: "discovery", 2: "instance"}),
    ("OpenIdConfiguration", 4, {1: "v2.0", 2: ".well-known", 3: "openid-configuration"}),
    ("Keys", 4, {1: "discovery", 2: "v2.0", 3: "keys"}),
)


def _segments(path):
    return path.strip("/").split("/")


def _document(path):
    parts = _segments(path)
    for op, count, fixed in DOCUMENTS:
        if len(parts) == count and all(parts[i] == v for i, v in fixed.items()):
            return op
    return None


def _is_token_path(path):
    parts = _segments(path)
    return len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]


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
        return _is_token_path(path) or _document(path) is not None

    def empty(self):
        return {"tokens": {}}

    def match(self, method, path):
        tenant = _segments(path)[0]
        if _is_token_path(path):
            return ("Token", "token", {"tenant": tenant}) if method == "POST" else None
        op = _document(path)
        if method == "GET" and op:
            return op, {"InstanceDiscovery": "instance_discovery", "OpenIdConfiguration": "openid_configuration",
                        "Keys": "keys"}[op], {"tenant": tenant}
        return None

    # --- discovery ------------------------------------------------------------
    def known_tenant(self, tenant):
        if tenant not in SHARED_TENANTS and tenant != self.cfg.credentials["AZURE_TENANT_ID"]:
            raise ApiError(400, "invalid_tenant", "AADSTS90002: Tenant '%s' not found. Check to make sure you "
                           "have the correct tenant ID and are signing into the correct cloud." % tenant,
                           codes=[90002])

    def instance_discovery(self, ctx):
        """The answer MSAL validates an authority with: where the tenant's
        OpenID configuration is, and the host's aliases."""
        endpoint = ctx.q.get("authorization_endpoint")
        if not endpoint:
            raise ApiError(400, "invalid_request", "AADSTS90014: The required field 'authorization_endpoint' is "
                           "missing from the credential.", codes=[90014])
        u = urlsplit(endpoint)
        parts = _segments(u.path)
        if u.scheme != "https" or not u.hostname or len(parts) < 3 or parts[-1] != "authorize":
            raise ApiError(400, "invalid_instance", "AADSTS50049: Unknown or invalid instance.", codes=[50049])
        # Only the v2 document is served (MSAL asks about .../oauth2/v2.0/authorize).
        doc = "%s/%s/v2.0/.well-known/openid-configuration" % (ctx.req.base_url, parts[0])
        host = u.hostname if u.port is None else "%s:%d" % (u.hostname, u.port)
        return self.ok({"tenant_discovery_endpoint": doc, "api-version": "1.1",
                        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]})

    def openid_configuration(self, ctx):
        tenant = ctx.p["tenant"]
        self.known_tenant(tenant)
        base = "%s/%s" % (ctx.req.base_url, tenant)
        # The shared tenants name no tenant of their own (literal {tenantid}).
        tid = "{tenantid}" if tenant in SHARED_TENANTS else tenant
        host = urlsplit(ctx.req.base_url).netloc
        return self.ok({
            "token_endpoint": base + "/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "jwks_uri": base + "/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": "%s/%s/v2.0" % (ctx.req.base_url, tid),
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": base + "/oauth2/v2.0/authorize",
            "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": base + "/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                 "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr",
                                 "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": base + "/kerberos",
            "tenant_region_scope": "WW",
            "cloud_instance_name": host,
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        })

    def keys(self, ctx):
        self.known_tenant(ctx.p["tenant"])
        return self.ok({"keys": [{"kty": "RSA", "use": "sig", "kid": KEY_ID, "n": KEY_N, "e": "AQAB",
                                  "issuer": "%s/%s/v2.0" % (ctx.req.base_url, ctx.p["tenant"])}]})

    def unknown_route(self, req):
        if _is_token_path(req.path):
            return ApiError(405, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.",
                            codes=[900561])
        return ApiError(405, "invalid_request", "AADSTS900561: The endpoint only accepts GET requests.",
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
        token = ".".join([_b64url(json.dumps({"typ": "JWT", "alg": "RS256", "kid": KEY_ID}, separators=(",", ":")).encode()),
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
