#!/usr/bin/env python3
"""Matching and clustering throughput, single core, on synthetic news entries.

Usage: python bench/throughput.py [--entries 5000] [--seed 1] [--repeat 5]

Builds entries from a vocabulary of ordinary news words plus, for one in five, sentences
that name the profile's actors (English and Russian), then times the matcher alone and the
matcher plus clustering (the same in-memory index the pipeline uses; no database).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from monitor.cluster import Member, features
from monitor.cluster_index import ClusterIndex
from monitor.match import Matcher, MatchResult, load_profile

WORDS = (
    "government minister said talks officials week report market city police court "
    "election budget energy company school health weather team season project plan "
    "president parliament agreement meeting region security statement visit economy "
    "growth prices trade workers union strike airport port border"
).split()
ACTORS_EN = [
    "Putin",
    "Lavrov",
    "Netanyahu",
    "Israeli officials",
    "Iran",
    "the IAEA",
    "Hezbollah",
    "Syrian state media",
    "the Kremlin",
    "Russia's envoy",
]
ACTS_EN = [
    "met",
    "warned",
    "discussed enrichment with",
    "struck targets near Damascus with",
    "spoke by phone with",
    "criticised",
]
RU = [
    "Путин обсудил с премьером Израиля ситуацию в Сирии.",
    "Иран расширил обогащение урана, сообщило МАГАТЭ.",
    "Хезболла выпустила ракеты по северу Израиля.",
]


def entry(rng: random.Random, i: int) -> tuple[str, str, str]:
    filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 80))).capitalize() + "."
    if i % 10 == 3:
        return rng.choice(RU), filler, "ru"
    if i % 5 == 0:
        a, b = rng.sample(ACTORS_EN, 2)
        title = f"{a} {rng.choice(ACTS_EN)} {b}"
        return title, f"{title} on day {i % 97}. {filler}", "en"
    title = " ".join(rng.choice(WORDS) for _ in range(8)).capitalize()
    return title, filler, "en"


def cluster_all(
    docs: list[tuple[str, str, str]], results: list[MatchResult], poll: int = 1
) -> tuple[ClusterIndex, int]:
    """Every entry through the index, as the pipeline places them: `poll` entries at a
    time, each poll's entries counted in the word weights before any is placed (poll=1:
    the weights change before every placement, the worst case); (index, developments)."""
    index = ClusterIndex()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    dev = 0
    placed = [
        (i, features(r, lang))
        for i, ((_, _, lang), r) in enumerate(zip(docs, results, strict=True))
    ]
    for start in range(0, len(placed), poll):
        batch = placed[start : start + poll]
        if poll > 1:
            for i, f in batch:
                index.observe(i, t0 + timedelta(minutes=i), f)
        for i, f in batch:
            at = t0 + timedelta(minutes=i)
            a = index.assign(None, str(i), at, f)
            if a.development_id is None:
                dev += 1
            index.add(Member(i, a.development_id or dev, None, str(i), at, f))
    return index, dev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--repeat",
        type=int,
        default=5,
        help="runs of each part; the fastest counts (a shared machine is noisy)",
    )
    ap.add_argument(
        "--poll",
        type=int,
        default=100,
        help="entries per poll, counted in the word weights before any is placed",
    )
    args = ap.parse_args()
    rng = random.Random(args.seed)
    docs = [entry(rng, i) for i in range(args.entries)]
    matcher = Matcher(load_profile())
    matcher.match("warm-up", "")

    match_s = cluster_s = single_s = float("inf")
    for _ in range(args.repeat):
        t = time.process_time()
        results = [matcher.match(title, text) for title, text, _ in docs]
        match_s = min(match_s, time.process_time() - t)
    for _ in range(args.repeat):
        t = time.process_time()
        index, dev = cluster_all(docs, results, args.poll)
        cluster_s = min(cluster_s, time.process_time() - t)
        t = time.process_time()
        cluster_all(docs, results, 1)
        single_s = min(single_s, time.process_time() - t)

    n = args.entries
    relevant = sum(r.relevant for r in results)
    print(f"entries {n}, relevant {relevant}, developments {dev}")
    print(f"match:   {n / match_s:9.0f} entries/s per core ({match_s:.2f} s CPU)")
    print(
        f"cluster: {n / cluster_s:9.0f} entries/s per core ({cluster_s:.2f} s CPU, "
        f"index of up to {len(index.members)} members, polls of {args.poll})"
    )
    print(f"cluster, one entry per poll: {n / single_s:9.0f} entries/s per core")
    print(f"both:    {n / (match_s + cluster_s):9.0f} entries/s per core")


if __name__ == "__main__":
    main()
