"""Fault injection: random rates from --faults, and faults scripted through
the admin API, which take precedence.

A fault is a dict: kind ("500", "503", "429", ... "reset", "slow", "badjson",
"truncate", "echo"), when ("before" or "after" the request changes state),
retry_after (seconds, for 429 and 503), delay (seconds, for slow); an
echo may name its code and its message, a template where {request} is the
request as received and {signature} the credential it carried.
"""

import random
import re
import threading

SPECIAL = ("reset", "slow", "badjson", "truncate", "echo")
WHENS = ("before", "after", "random")


def check_kind(kind):
    kind = str(kind)
    if kind in SPECIAL:
        return kind
    if kind.isdigit() and 400 <= int(kind) <= 599:
        return kind
    raise ValueError("unknown fault kind %r (an HTTP status 400-599 or one of %s)"
                     % (kind, ", ".join(SPECIAL)))


def parse_rates(spec):
    """'500:0.05,reset:0.02' or {"500": 0.05} -> [(kind, rate)]"""
    if not spec:
        return []
    items = spec.items() if isinstance(spec, dict) else (p.split(":", 1) for p in spec.split(",") if p.strip())
    rates = []
    for kind, rate in items:
        rate = float(rate)
        if not 0 <= rate <= 1:
            raise ValueError("fault rate %r out of [0, 1]" % rate)
        rates.append((check_kind(str(kind).strip()), rate))
    if sum(r for _, r in rates) > 1:
        raise ValueError("fault rates add up to more than 1")
    return rates


def _seed(v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("a seed must be an integer, not %r" % (v,))
    return v


class Faults:
    def __init__(self, rates, when, seed, slow_seconds, retry_after):
        if when not in WHENS:
            raise ValueError("--fault-when must be before, after or random")
        self.lock = threading.Lock()
        self.rates = parse_rates(rates)
        self.when = when
        self.seed = self.first_seed = seed
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.rng = random.Random(seed)
        # Providers reseeded on their own (POST /_cloudsim/faults "seeds"):
        # their random faults then come from an RNG no other provider's
        # requests draw from.
        self.seeds = {}
        self.rngs = {}
        self.scripted = []

    def reset(self):
        with self.lock:
            self.seed = self.first_seed
            self.rng = random.Random(self.seed)
            self.seeds, self.rngs = {}, {}
            self.scripted = []

    @staticmethod
    def check_seeds(seed=None, seeds=None):
        """-> (seed or None, {provider: seed}), or raises ValueError."""
        if seeds is not None and not (isinstance(seeds, dict) and all(
                isinstance(k, str) for k in seeds)):
            raise ValueError("seeds must be an object of provider: seed")
        return (None if seed is None else _seed(seed),
                {k: _seed(v) for k, v in (seeds or {}).items()})

    def reseed(self, seed=None, seeds=None):
        """seed: a new seed for every provider's random faults (providers
        reseeded alone before lose their own RNG); seeds: {provider: seed}
        gives those providers an RNG of their own."""
        seed, seeds = self.check_seeds(seed, seeds)
        with self.lock:
            if seed is not None:
                self.seed = seed
                self.rng = random.Random(seed)
                self.seeds, self.rngs = {}, {}
            for k, v in seeds.items():
                self.seeds[k] = v
                self.rngs[k] = random.Random(v)

    def script(self, entries, replace=False):
        prepared = [self._prepare(e) for e in entries]
        with self.lock:
            if replace:
                self.scripted = []
            self.scripted.extend(prepared)
            return len(self.scripted)

    def _prepare(self, e):
        if not isinstance(e, dict):
            raise ValueError("each fault must be an object")
        unknown = set(e) - {"kind", "when", "match", "count", "retry_after", "delay", "code", "message"}
        if unknown:
            raise ValueError("unknown fault field(s): " + ", ".join(sorted(unknown)))
        f = {"kind": check_kind(e.get("kind", "")), "count": int(e.get("count", 1))}
        if f["count"] < 1:
            raise ValueError("count must be >= 1")
        if "when" in e:
            if e["when"] not in WHENS:
                raise ValueError("when must be before, after or random")
            f["when"] = e["when"]
        for k in ("retry_after", "delay"):
            if k in e:
                f[k] = float(e[k])
        for k in ("code", "message"):
            if k in e:
                if f["kind"] != "echo" or not isinstance(e[k], str):
                    raise ValueError("%s is a string, for an echo only" % k)
                f[k] = e[k]
        match = e.get("match") or {}
        if not isinstance(match, dict) or set(match) - {"provider", "operation", "method", "path_regex"}:
            raise ValueError("match takes provider, operation, method, path_regex")
        f["match"] = dict(match)
        if "path_regex" in match:
            try:
                f["_re"] = re.compile(match["path_regex"])
            except re.error as e:
                raise ValueError("bad path_regex: %s" % e)
        return f

    def pending(self):
        with self.lock:
            return [{k: v for k, v in f.items() if not k.startswith("_")} for f in self.scripted]

    @staticmethod
    def _matches(f, provider, operation, method, path):
        m = f["match"]
        return ((m.get("provider") in (None, provider))
                and (m.get("operation") in (None, operation))
                and (m.get("method") is None or m["method"].upper() == method)
                and ("_re" not in f or f["_re"].search(path) is not None))

    def pick(self, provider, operation, method, path, random_ok):
        """The fault for this request, or None. Consumes a scripted one."""
        with self.lock:
            for i, f in enumerate(self.scripted):
                if self._matches(f, provider, operation, method, path):
                    f["count"] -= 1
                    if f["count"] == 0:
                        del self.scripted[i]
                    return self._resolve(f, scripted=True)
            if not (random_ok and self.rates):
                return None
            rng = self.rngs.get(provider, self.rng)
            r = rng.random()
            for kind, rate in self.rates:
                if r < rate:
                    return self._resolve({"kind": kind}, scripted=False, rng=rng)
                r -= rate
            return None

    def _resolve(self, f, scripted, rng=None):
        when = f.get("when", self.when)
        # A throttled request never reached the backend; only a script that
        # asks for it explicitly gets a 429 after the state change.
        if f["kind"] == "429" and not (scripted and "when" in f):
            when = "before"
        if when == "random":
            when = (rng or self.rng).choice(("before", "after"))
        out = {"kind": f["kind"], "when": when,
               "retry_after": f.get("retry_after", self.retry_after),
               "delay": f.get("delay", self.slow_seconds)}
        for k in ("code", "message"):
            if k in f:
                out[k] = f[k]
        return out
