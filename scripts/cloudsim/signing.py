"""Signature algorithms of the three clouds, as the verifier sees them.

Pure functions: no clocks, no nonces, no HTTP. The provider modules add the
freshness and replay checks and turn a failure into each cloud's error body.
Every function here is checked against the worked examples of the API
references by the test suite.
"""

import base64
import hashlib
import hmac
from urllib.parse import quote, unquote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _b64_hmac(digest, key, msg):
    return base64.b64encode(hmac.new(key.encode(), msg.encode(), digest).digest()).decode()


def same(a, b):
    return hmac.compare_digest(a.encode(), b.encode())


# --- NAVER Cloud API Gateway signature v2 ---------------------------------

def ncp_v2(method, uri, timestamp, access_key, secret_key):
    """uri is the raw request target (path and query exactly as sent)."""
    msg = "%s %s\n%s\n%s" % (method, uri, timestamp, access_key)
    return _b64_hmac(hashlib.sha256, secret_key, msg)


# --- Alibaba Cloud: query and header canonicalisation ----------------------

def parse_query(raw_query):
    """Split a raw query into (key, value, had_equals) with values decoded.
    had_equals keeps apart ``key=`` and ``key``, which SDKs sign differently."""
    pairs = []
    if raw_query:
        for part in raw_query.split("&"):
            if not part:
                continue
            k, eq, v = part.partition("=")
            pairs.append((unquote(k), unquote(v), bool(eq)))
    return pairs


def rfc3986(s):
    return quote(s, safe="-_.~")


def acs3_canonical_query(pairs, empty_equals=True):
    out = []
    for k, v, _ in sorted(pairs, key=lambda p: (p[0], p[1])):
        if v == "" and not empty_equals:
            out.append(rfc3986(k))
        else:
            out.append(rfc3986(k) + "=" + rfc3986(v))
    return "&".join(out)


def acs3_canonical_uri(raw_path):
    return raw_path.replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def merge_headers(header_list):
    """(name, value) pairs -> {lowercase name: values sorted, joined by ','}."""
    grouped = {}
    for name, value in header_list:
        grouped.setdefault(name.lower(), []).append(value.strip())
    return {k: ",".join(sorted(v)) for k, v in grouped.items()}


def acs3_canonical_request(method, canonical_uri, canonical_query, headers, signed, payload_hash):
    """headers: merged lowercase map; signed: lowercase names in order."""
    lines = "".join("%s:%s\n" % (h, headers.get(h, "")) for h in signed)
    return "\n".join([method, canonical_uri, canonical_query, lines, ";".join(signed), payload_hash])


def acs3_signature(secret, canonical_request):
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()


def acs3_signed_headers_of(headers):
    """The header names an SDK signs: host, content-type and every x-acs-*."""
    return sorted(h for h in headers if h.startswith("x-acs-") or h in ("host", "content-type"))


def acs3_authorization(access_key, secret, method, canonical_uri, canonical_query, headers, payload_hash):
    signed = acs3_signed_headers_of(headers)
    cr = acs3_canonical_request(method, canonical_uri, canonical_query, headers, signed, payload_hash)
    return "ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=%s,Signature=%s" % (
        access_key, ";".join(signed), acs3_signature(secret, cr))


def parse_acs3_authorization(value):
    """-> (access_key, [signed headers], signature) or None."""
    scheme, _, rest = value.partition(" ")
    if scheme != "ACS3-HMAC-SHA256":
        return None
    fields = {}
    for part in rest.split(","):
        k, eq, v = part.strip().partition("=")
        if eq:
            fields[k] = v
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return None
    signed = [h for h in fields["SignedHeaders"].lower().split(";") if h]
    return fields["Credential"], signed, fields["Signature"]


def check_acs3(method, raw_path, raw_query, headers, body, signed, signature, secret, payload_hash=None):
    """Verify an ACS3-HMAC-SHA256 signature.

    headers: merged lowercase map as received (the Host header included).
    payload_hash: the x-acs-content-sha256 the request carries, which the
    canonical request ends with as the gateway reads it (the caller checks
    it against the body); None hashes the body instead.
    Returns (ok, canonical_request). Both spellings of an empty query value
    are accepted, as SDKs differ there."""
    pairs = parse_query(raw_query)
    uri = acs3_canonical_uri(raw_path)
    if payload_hash is not None:
        payload = payload_hash
    else:
        payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    variants = [True]
    if any(v == "" for _, v, _ in pairs):
        variants.append(False)
    first = None
    for empty_equals in variants:
        cr = acs3_canonical_request(method, uri, acs3_canonical_query(pairs, empty_equals),
                                    headers, signed, payload)
        if first is None:
            first = cr
        if same(acs3_signature(secret, cr), signature.lower()):
            return True, cr
    return False, first


# --- Alibaba Cloud ROA "acs" HMAC-SHA1 ----------------------------------------

_WS = str.maketrans("\t\n\r\f", "    ")


def roa_canonical_headers(headers):
    acs = sorted((k, v) for k, v in headers.items() if k.startswith("x-acs-"))
    return "".join("%s:%s\n" % (k, v.translate(_WS).strip()) for k, v in acs)


def roa_canonical_resource(path, pairs, empty_equals=True):
    if not pairs:
        return path
    items = []
    for k, v, _ in sorted(pairs, key=lambda p: (p[0], p[1])):
        items.append(k if (v == "" and not empty_equals) else k + "=" + v)
    return path + "?" + "&".join(items)


def roa_string_to_sign(method, headers, resource):
    return "\n".join([method, headers.get("accept", ""), headers.get("content-md5", ""),
                      headers.get("content-type", ""), headers.get("date", ""),
                      roa_canonical_headers(headers) + resource])


def roa_signature(secret, string_to_sign):
    return _b64_hmac(hashlib.sha1, secret, string_to_sign)


def parse_roa_authorization(value):
    """'acs AK:signature' -> (access_key, signature) or None."""
    scheme, _, rest = value.partition(" ")
    ak, colon, sig = rest.strip().rpartition(":")
    if scheme != "acs" or not colon or not ak or not sig:
        return None
    return ak, sig


def check_roa(method, raw_path, raw_query, headers, signature, secret):
    """Verify a ROA 'acs' signature. Returns (ok, string_to_sign).

    Accepted variants, each produced by some SDK: an empty query value as
    'key=' (TypeScript) or 'key' (Go, Python, C++); query values decoded
    (the documented form) or as sent."""
    decoded = parse_query(raw_query)
    raw = []
    if raw_query:
        for part in raw_query.split("&"):
            if part:
                k, eq, v = part.partition("=")
                raw.append((k, v, bool(eq)))
    candidates = []
    for pairs in (decoded, raw):
        for empty_equals in (True, False):
            res = roa_canonical_resource(raw_path, pairs, empty_equals)
            if res not in candidates:
                candidates.append(res)
    first = None
    for res in candidates:
        sts = roa_string_to_sign(method, headers, res)
        if first is None:
            first = sts
        if same(roa_signature(secret, sts), signature):
            return True, sts
    return False, first
