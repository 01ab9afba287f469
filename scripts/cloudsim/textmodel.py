"""The stand-in for Azure's custom text models: a small naive-Bayes text
classifier and a phrase dictionary for entities, trained on the imported
labelled documents. Deterministic: ties are broken by a seeded hash."""

import collections
import math
import re

from .common import stable_unit

STOP = frozenset("a an and are as at be by for from has have in is it its of on or that the this "
                 "to was were will with txt".split())
MAX_VOCABULARY = 2000


def tokens(text):
    return [t for t in re.findall(r"[a-z0-9]+", text.lower()) if t not in STOP]


def train(docs):
    """docs: [(text, [categories])] -> model (JSON-able)."""
    counts = collections.defaultdict(collections.Counter)
    prior = collections.Counter()
    for text, cats in docs:
        toks = tokens(text)
        for c in cats:
            prior[c] += 1
            counts[c].update(toks)
            counts[c].update(tokens(c) * 3)
    return {"prior": dict(prior),
            "counts": {c: dict(cnt.most_common(MAX_VOCABULARY)) for c, cnt in counts.items()}}


def _loglik(model, toks, classes):
    vocab = {t for cnt in model["counts"].values() for t in cnt} | set(toks)
    v = max(1, len(vocab))
    total_docs = sum(model["prior"].values()) or 1
    out = {}
    n = max(1, len(toks))
    for c in classes:
        cnt = model["counts"].get(c, {})
        total = sum(cnt.values())
        ll = sum(math.log((cnt.get(t, 0) + 1) / (total + v)) for t in toks) / n
        out[c] = ll + math.log((model["prior"].get(c, 0) + 1) / (total_docs + len(classes))) / n
    return out, v


def classify(model, text, classes, seed, key, multi=False, threshold=0.5):
    """[(category, confidence)] best first: the top class for single label,
    every class at or above threshold for multi label."""
    classes = sorted(classes)
    if not classes:
        return []
    toks = tokens(text)
    ll, v = _loglik(model, toks, classes)
    # A hair of seeded noise orders exact ties the same way on every run.
    ll = {c: s + 1e-9 * stable_unit(seed, key, c) for c, s in ll.items()}
    if multi:
        background = sum(math.log(1.0 / v) for _ in toks) / max(1, len(toks))
        conf = {c: 1 / (1 + math.exp(-8 * (s - background) - 0.5)) for c, s in ll.items()}
        picked = sorted(((c, p) for c, p in conf.items() if p >= threshold), key=lambda x: -x[1])
        return [(c, round(p, 4)) for c, p in picked]
    top = max(ll.values())
    exp = {c: math.exp(12 * (s - top)) for c, s in ll.items()}
    z = sum(exp.values())
    best = max(exp, key=exp.get)
    return [(best, round(exp[best] / z, 4))]


def phrases(docs):
    """docs: [(text, [(category, offset, length)])] -> {phrase lowercased: category}"""
    out = {}
    for text, labels in docs:
        for cat, off, length in labels:
            phrase = text[off:off + length].strip().lower()
            if phrase:
                out[phrase] = cat
    return out


def find_entities(table, text, seed):
    """[(text, category, offset, length, confidence)], longest phrase first,
    no overlaps; offsets in code points."""
    low = text.lower()
    taken = [False] * len(text)
    found = []
    for phrase in sorted(table, key=lambda p: (-len(p), p)):
        start = 0
        while True:
            i = low.find(phrase, start)
            if i < 0:
                break
            j = i + len(phrase)
            if not any(taken[i:j]):
                taken[i:j] = [True] * (j - i)
                conf = round(0.8 + 0.2 * stable_unit(seed, phrase, i), 4)
                found.append((text[i:j], table[phrase], i, j - i, conf))
            start = j
    return sorted(found, key=lambda e: e[2])


def scores(expected, predicted, labels):
    """Per-label counts and precision/recall/F1 plus micro and macro averages.
    expected, predicted: lists of label sets, one per document."""
    per = {}
    for lab in labels:
        tp = sum(1 for e, p in zip(expected, predicted) if lab in e and lab in p)
        fp = sum(1 for e, p in zip(expected, predicted) if lab not in e and lab in p)
        fn = sum(1 for e, p in zip(expected, predicted) if lab in e and lab not in p)
        tn = len(expected) - tp - fp - fn
        per[lab] = _prf(tp, fp, fn, tn)
    tp = sum(s["truePositiveCount"] for s in per.values())
    fp = sum(s["falsePositiveCount"] for s in per.values())
    fn = sum(s["falseNegativeCount"] for s in per.values())
    micro = _prf(tp, fp, fn, 0)
    n = max(1, len(per))
    return per, {
        "microF1": micro["f1"], "microPrecision": micro["precision"], "microRecall": micro["recall"],
        "macroF1": round(sum(s["f1"] for s in per.values()) / n, 6),
        "macroPrecision": round(sum(s["precision"] for s in per.values()) / n, 6),
        "macroRecall": round(sum(s["recall"] for s in per.values()) / n, 6)}


def _prf(tp, fp, fn, tn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"f1": round(f, 6), "precision": round(p, 6), "recall": round(r, 6),
            "truePositiveCount": tp, "trueNegativeCount": tn, "falsePositiveCount": fp,
            "falseNegativeCount": fn}
