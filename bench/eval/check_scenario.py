"""Check that a scenario file of our own follows the referee's format (FORMAT.md) and the
rules our evaluation sets keep, before it is used to measure anything.

    python bench/eval/check_scenario.py bench/eval/p2018/scenario.json [...]

It checks the structure (ids, references, variants, feed caps) and prints the counts a
README reports: developments and items by label, items per round and language, expected
alerts, look-alike candidates. It does not run the monitor.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

TOPICS = {"russia-israel", "syria", "iran-nuclear", "hezbollah", "diaspora", "regional-security"}
LABELS = {"relevant", "irrelevant", "borderline"}
VARIANTS = {None, "syndicated", "tracking-url", "updated", "retitled"}
FORMATS = {"rss2", "atom", "rss1"}
FEED_CAP = 20


def check(path: Path) -> list[str]:
    errors: list[str] = []
    sc = json.loads(path.read_text(encoding="utf-8"))
    for key in ("name", "description", "outlets", "developments", "items"):
        if key not in sc:
            errors.append(f"missing top-level key {key!r}")
    outlets = {o["id"]: o for o in sc.get("outlets", [])}
    if len(outlets) != len(sc.get("outlets", [])):
        errors.append("duplicate outlet ids")
    for o in outlets.values():
        if o.get("format") not in FORMATS:
            errors.append(f"outlet {o['id']}: format {o.get('format')!r}")
        if o.get("language") not in ("en", "ru"):
            errors.append(f"outlet {o['id']}: language {o.get('language')!r}")
        for k in ("name", "site"):
            if not o.get(k):
                errors.append(f"outlet {o['id']}: no {k}")
    devs = {d["id"]: d for d in sc.get("developments", [])}
    if len(devs) != len(sc.get("developments", [])):
        errors.append("duplicate development ids")
    for d in devs.values():
        if d.get("label") not in LABELS:
            errors.append(f"development {d['id']}: label {d.get('label')!r}")
        if d.get("label") == "relevant" and (not d.get("topics") or set(d["topics"]) - TOPICS):
            errors.append(f"development {d['id']}: topics {d.get('topics')!r}")
        try:
            date.fromisoformat(d.get("date", ""))
        except ValueError:
            errors.append(f"development {d['id']}: date {d.get('date')!r}")
        if not d.get("summary"):
            errors.append(f"development {d['id']}: no summary")
    items = {it["id"]: it for it in sc.get("items", [])}
    if len(items) != len(sc.get("items", [])):
        errors.append("duplicate item ids")
    urls: dict[str, str] = {}
    per_round_outlet: Counter[tuple[int, str]] = Counter()
    for it in items.values():
        iid = it["id"]
        for k in ("outlet", "round", "minutes_before_poll", "development", "title", "summary"):
            if k not in it:
                errors.append(f"item {iid}: no {k}")
        if it.get("outlet") not in outlets:
            errors.append(f"item {iid}: unknown outlet {it.get('outlet')!r}")
            continue
        if it.get("development") not in devs:
            errors.append(f"item {iid}: unknown development {it.get('development')!r}")
        if it.get("language") != outlets[it["outlet"]]["language"]:
            errors.append(f"item {iid}: language differs from its outlet's")
        if not isinstance(it.get("round"), int) or it["round"] < 0:
            errors.append(f"item {iid}: round {it.get('round')!r}")
        mbp = it.get("minutes_before_poll")
        if not isinstance(mbp, int) or mbp <= 0:
            errors.append(f"item {iid}: minutes_before_poll {mbp!r}")
        elif it.get("round") == 0 and mbp < 60:
            errors.append(f"item {iid}: a history item should be published well before poll 0")
        elif it.get("round", 0) > 0 and mbp > 59:
            errors.append(f"item {iid}: rounds are an hour apart, minutes_before_poll <= 59")
        variant = it.get("variant")
        if variant not in VARIANTS:
            errors.append(f"item {iid}: variant {variant!r}")
        site = urlsplit(outlets[it["outlet"]]["site"]).netloc.removeprefix("www.")
        host = urlsplit(it.get("url", "")).netloc
        if host != site and not host.endswith("." + site):
            errors.append(f"item {iid}: url host {host} is not on the outlet's site {site}")
        if variant == "updated":
            base = items.get(it.get("same_as", ""))
            if base is None:
                errors.append(f"item {iid}: updated without a valid same_as")
            else:
                if base["outlet"] != it["outlet"] or base["development"] != it["development"]:
                    errors.append(f"item {iid}: updated must share outlet and development")
                if base["round"] >= it["round"]:
                    errors.append(f"item {iid}: updated must come in a later round")
                if it.get("url") != base.get("url"):
                    errors.append(f"item {iid}: updated keeps its base's url")
        else:
            if it.get("url") in urls:
                errors.append(f"item {iid}: url also used by {urls[it['url']]}")
            urls[it.get("url", "")] = iid
        if variant in ("syndicated", "tracking-url"):
            base = items.get(it.get("copy_of", ""))
            if base is None:
                errors.append(f"item {iid}: {variant} without a valid copy_of")
            elif base["development"] != it["development"]:
                errors.append(f"item {iid}: {variant} copy in another development")
            elif variant == "syndicated" and base["outlet"] == it["outlet"]:
                errors.append(f"item {iid}: a syndicated copy is at another outlet")
            elif variant == "tracking-url" and (
                base["outlet"] != it["outlet"] or base["url"] == it["url"]
            ):
                errors.append(f"item {iid}: tracking-url: same outlet, another url")
        if variant == "retitled":
            base = items.get(it.get("same_as", ""))
            if base is None or base["outlet"] != it["outlet"]:
                errors.append(f"item {iid}: retitled needs same_as of the same outlet")
        per_round_outlet[(it.get("round", 0), it["outlet"])] += 1
    rounds = max((it["round"] for it in items.values()), default=0)
    for outlet in outlets:
        total = 0
        for k in range(rounds + 1):
            total += per_round_outlet[(k, outlet)]
            if per_round_outlet[(k, outlet)] > FEED_CAP:
                errors.append(f"outlet {outlet}: more than {FEED_CAP} items in round {k}")
    used = {it["development"] for it in items.values()}
    for d in devs:
        if d not in used:
            errors.append(f"development {d}: no items")
    return errors


def summary(path: Path) -> None:
    sc = json.loads(path.read_text(encoding="utf-8"))
    devs = {d["id"]: d for d in sc["developments"]}
    first: dict[str, int] = defaultdict(lambda: 99)
    for it in sc["items"]:
        first[it["development"]] = min(first[it["development"]], it["round"])
    labels = Counter(d["label"] for d in devs.values())
    item_labels = Counter(devs[it["development"]]["label"] for it in sc["items"])
    print(f"{path}: {len(sc['items'])} items, {len(devs)} developments")
    for label in ("relevant", "borderline", "irrelevant"):
        print(f"  {label:10} developments {labels[label]:3}  items {item_labels[label]:3}")
    per_round = Counter(it["round"] for it in sc["items"])
    print("  items per round:", [per_round[k] for k in sorted(per_round)])
    print("  items by language:", dict(Counter(it["language"] for it in sc["items"])))
    expected = sum(1 for d, r in first.items() if devs[d]["label"] == "relevant" and r >= 1)
    print(f"  expected alerts: {expected}")
    print(
        "  variants:", dict(Counter(it.get("variant") for it in sc["items"] if it.get("variant")))
    )
    topics = Counter(t for d in devs.values() if d["label"] == "relevant" for t in d["topics"])
    print("  relevant topics:", dict(topics))


def main() -> int:
    bad = 0
    for arg in sys.argv[1:]:
        path = Path(arg)
        errors = check(path)
        for e in errors:
            print(f"{path}: {e}")
        bad += bool(errors)
        summary(path)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
