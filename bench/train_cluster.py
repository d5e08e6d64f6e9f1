"""Train the clusterer's join model (monitor/data/join_model.toml) on our own evaluation sets.

    python bench/train_cluster.py [--sets bench/eval/p2013/scenario.json ...] [--loo]
        [--out monitor/data/join_model.toml] [--l2 1.0]

Each set is replayed through the real pipeline in-process (bench/quality.py), in compressed
and in calendar time, and its stored reports are read back with the truth. The reports on
topic are then placed again in the order the pipeline places them, each weighed against
the true developments seen so far within the window, with the product's own evidence
(monitor.cluster.weigh's features): one decision per report, among its candidate
developments and "a new development". A conditional logit over those decisions (the
log-odds of each candidate against opening a new development, L2-regularized on
standardized features) is fitted by Newton's method in pure Python, so training needs
nothing the service does not install.

`--loo` also measures what the model does on sets it was not trained on: for each set,
a model fitted on the others replays it end to end (both modes) and the referee scores
the alerts; the shared dev scenarios are scored with the model fitted on every set.
Only our own sets are trained on: the shared scenarios and the private ones stay unseen.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402

OWN = sorted(p for p in (HERE / "eval").glob("p*/scenario.json"))
SHARED = [
    HERE.parent.parent / "shared" / "scenarios" / n / "scenario.json" for n in ("dev", "dev2")
]
# Items that reach a development by address, not by the model.
COPIES = ("updated", "tracking-url")


@dataclass(frozen=True)
class Report:
    entry_id: int
    url: str
    published_at: datetime
    development: str  # the truth
    features: Any  # monitor.cluster.Features


@dataclass(frozen=True)
class Decision:
    """One report's choice: the evidence of each candidate, and which one is right (-1:
    a new development)."""

    rows: list[list[float]]
    label: int


def replay(scenario: Path, calendar: bool) -> tuple[list[Report], Any]:
    """The scenario's stored reports on topic, in placement order, and the word weights
    of everything stored."""
    from monitor.cluster import Idf, features_from_json

    referee = quality.load_referee(quality.DEFAULT_REPLAY)
    kept: dict[str, Any] = {}

    def inspect(sc: dict[str, Any], rows: list[Any]) -> None:
        truth = {it["url"]: it for it in sc["items"]}
        idf = Idf()
        reports = []
        for e in rows:
            if not e.cluster_features:
                continue
            f = features_from_json(e.cluster_features)
            idf.add(f)
            it = truth.get(e.url)
            if it is None or e.join_reason == "off-topic" or it.get("variant") in COPIES:
                continue
            reports.append(
                Report(e.id, e.canonical_url or e.url, e.published_at, it["development"], f)
            )
        reports.sort(key=lambda r: (r.published_at, r.url))
        kept["reports"], kept["idf"] = reports, idf

    with tempfile.TemporaryDirectory() as tmp:
        quality.run(referee, scenario, calendar, None, Path(tmp), inspect=inspect)
    return kept["reports"], kept["idf"]


def mix(a: Path, b: Path, out: Path) -> Path:
    """One scenario of two, the second's events moved onto the first's days (its dates
    shifted so that the two periods' middles meet): twice as much news a day, so that
    calendar time also shows reports of different events published hours apart. Each
    of our sets alone has a relevant event every few days, which would teach the model
    that what is published on the same day is one event."""
    from datetime import date

    first, second = (json.loads(p.read_text(encoding="utf-8")) for p in (a, b))

    def middle(sc: dict[str, Any]) -> date:
        days = sorted(date.fromisoformat(d["date"]) for d in sc["developments"])
        return days[len(days) // 2]

    shift = middle(first) - middle(second)
    for o in second["outlets"]:
        o["id"] = "b-" + o["id"]
    for d in second["developments"]:
        d["id"] = "b-" + d["id"]
        d["date"] = (date.fromisoformat(d["date"]) + shift).isoformat()
    for it in second["items"]:
        for key in ("id", "outlet", "development", "same_as", "copy_of"):
            if it.get(key):
                it[key] = "b-" + it[key]
    merged = {
        "name": f"{first['name']}+{second['name']}",
        "description": "two sets on one calendar",
        "outlets": first["outlets"] + second["outlets"],
        "developments": first["developments"] + second["developments"],
        "items": first["items"] + second["items"],
    }
    out.write_text(json.dumps(merged), encoding="utf-8")
    return out


def decisions(reports: Sequence[Report], idf: Any) -> list[Decision]:
    """Teacher forcing: each report weighed against the true developments before it."""
    from monitor.cluster import (
        EVIDENCE,
        ClusterParams,
        Member,
        _evidence,
        _relative,
        alike,
        crowd_of,
        told_apart,
    )

    # Every candidate the likeness gate admits, lone ones reading under `lone` too: the
    # service refuses those (all wrong in our sets), but as negatives they teach the model
    # what a weak lone candidate looks like, including the ones just above the line.
    params = ClusterParams(lone=0.0)
    seen: dict[str, list[Member]] = {}
    ids = {dev: i for i, dev in enumerate(dict.fromkeys(r.development for r in reports))}
    out = []
    for r in reports:
        busy = math.log1p(
            crowd_of(
                r.published_at, ((m.published_at, ids[dev]) for dev, ms in seen.items() for m in ms)
            )
        )
        found = []
        for dev, members in seen.items():
            near = [m for m in members if abs(m.published_at - r.published_at) <= params.window]
            if near:
                near.sort(key=lambda m: m.published_at, reverse=True)
                if told_apart(r.features, near[: params.members]):
                    continue  # not a candidate: "new" is right
                ev = _evidence(r.features, r.published_at, near[: params.members], idf)
                ev[0]["crowd"] = busy
                if alike(ev[0], params):  # else not a candidate: "new" is right
                    found.append((dev, ev))
        _relative([e for _, (e, _, _) in found], r.features)
        rows = [[e[name] for name in EVIDENCE] for _, (e, _, _) in found]
        label = next((i for i, (dev, _) in enumerate(found) if dev == r.development), -1)
        out.append(Decision(rows, label))
        seen.setdefault(r.development, []).append(
            Member(r.entry_id, 0, r.url, "", r.published_at, r.features)
        )
    return out


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting: a x = b (a is small and dense)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        p = m[col][col]
        for r in range(col + 1, n):
            f = m[r][col] / p
            if f:
                row, top = m[r], m[col]
                for c in range(col, n + 1):
                    row[c] -= f * top[c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


# Evidence whose direction is known before any data: a contradiction never makes a join
# likelier, a shared trait never makes it less likely, nearer in time never less likely,
# and many other events at the same hours never make a join likelier.
# A weight the fit gives the other sign (when the evidence is confounded with others in
# our sets) is set to zero and the rest fitted again, so the model cannot learn that
# other places mean the same event, or that two days apart is likelier than six hours.
AGAINST = frozenset(
    (
        "dateline_conflict",
        "day_conflict",
        "weekday_conflict",
        "place_conflict",
        "again",
        "gap",
        "crowd",
    )
)
FOR = frozenset(
    (
        "sim_max",
        "sim_mean",
        "centroid",
        "headline",
        "specifics",
        "dateline_match",
        "weekday_match",
        "same_day",
        "within_3h",
        "within_2d",
    )
)


def fit(
    found: Sequence[Decision], l2: float = 1.0, drop: frozenset[str] = frozenset()
) -> tuple[list[float], float]:
    """`_fit`, with the weights of known direction kept to it; `drop`: features left out."""
    from monitor.cluster import EVIDENCE

    off = {i for i, name in enumerate(EVIDENCE) if name in drop}
    while True:
        weights, bias = _fit(found, l2, off)
        wrong = {
            i
            for i, (name, w) in enumerate(zip(EVIDENCE, weights, strict=True))
            if (name in AGAINST and w > 0) or (name in FOR and w < 0)
        }
        if not wrong - off:
            return weights, bias
        off |= wrong


def _fit(
    found: Sequence[Decision], l2: float = 1.0, off: set[int] | None = None, rounds: int = 30
) -> tuple[list[float], float]:
    """Conditional logit by Newton's method: (weights, bias) on the raw features; the
    features in `off` are left out (weight 0)."""
    rows = [row for d in found for row in d.rows]
    dim = len(rows[0])
    off = off or set()
    found = [
        Decision([[0.0 if i in off else v for i, v in enumerate(r)] for r in d.rows], d.label)
        for d in found
    ]
    rows = [row for d in found for row in d.rows]
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(dim)]
    sd = [
        math.sqrt(sum((r[i] - mean[i]) ** 2 for r in rows) / len(rows)) or 1.0 for i in range(dim)
    ]
    groups = [
        ([[1.0] + [(r[i] - mean[i]) / sd[i] for i in range(dim)] for r in d.rows], d.label)
        for d in found
        if d.rows
    ]
    theta = [0.0] * (dim + 1)

    def objective(t: list[float]) -> float:
        total = -0.5 * l2 * sum(v * v for v in t[1:])
        for xs, label in groups:
            s = [sum(a * b for a, b in zip(t, x, strict=True)) for x in xs]
            top = max(0.0, *s)
            log_z = top + math.log(math.exp(-top) + sum(math.exp(v - top) for v in s))
            total += (s[label] if label >= 0 else 0.0) - log_z
        return total

    current = objective(theta)
    for _ in range(rounds):
        grad = [0.0] + [-l2 * v for v in theta[1:]]
        hess = [[0.0] * (dim + 1) for _ in range(dim + 1)]
        for i in range(1, dim + 1):
            hess[i][i] = l2
        for xs, label in groups:
            s = [sum(a * b for a, b in zip(theta, x, strict=True)) for x in xs]
            top = max(0.0, *s)
            e = [math.exp(v - top) for v in s]
            z = math.exp(-top) + sum(e)
            p = [v / z for v in e]
            mean_x = [sum(p[j] * xs[j][i] for j in range(len(xs))) for i in range(dim + 1)]
            if label >= 0:
                for i in range(dim + 1):
                    grad[i] += xs[label][i]
            for i in range(dim + 1):
                grad[i] -= mean_x[i]
            for j, x in enumerate(xs):
                pj = p[j]
                for i in range(dim + 1):
                    pxi = pj * x[i]
                    row = hess[i]
                    for k in range(i, dim + 1):
                        row[k] += pxi * x[k]
            for i in range(dim + 1):
                row = hess[i]
                mi = mean_x[i]
                for k in range(i, dim + 1):
                    row[k] -= mi * mean_x[k]
        for i in range(dim + 1):
            for k in range(i):
                hess[i][k] = hess[k][i]
        step = _solve(hess, grad)
        size = 1.0
        while True:
            trial = [a + size * b for a, b in zip(theta, step, strict=True)]
            value = objective(trial)
            if value >= current or size < 1e-4:
                break
            size /= 2
        gain = value - current
        theta, current = trial, value
        if abs(gain) < 1e-6:
            break
    weights = [theta[i + 1] / sd[i] for i in range(dim)]
    bias = theta[0] - sum(w * m for w, m in zip(weights, mean, strict=True))
    return weights, bias


def means(found: Sequence[Decision]) -> list[float]:
    """Each feature's average over the candidates: the typical candidate that
    explanations measure against."""
    rows = [row for d in found for row in d.rows]
    return [sum(r[i] for r in rows) / len(rows) for i in range(len(rows[0]))]


def model_toml(
    weights: Sequence[float], bias: float, header: Sequence[str], mean: Sequence[float] = ()
) -> str:
    from monitor.cluster import EVIDENCE

    lines = [f"# {h}" if h else "#" for h in header]
    lines += ["", f"bias = {bias:.4f}", "", "[weights]"]
    lines += [f"{name} = {w:.4f}" for name, w in zip(EVIDENCE, weights, strict=True)]
    if mean:
        lines += ["", "[means]"]
        lines += [f"{name} = {m:.4f}" for name, m in zip(EVIDENCE, mean, strict=True)]
    return "\n".join(lines) + "\n"


def score(scenario: Path, model: Path | None) -> dict[str, dict[str, Any]]:
    """The referee's score of an end-to-end replay with `model`, in both modes."""
    referee = quality.load_referee(quality.DEFAULT_REPLAY)
    extra = f'[matching]\njoin_model = "{model.as_posix()}"\n' if model else ""
    out = {}
    for calendar in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            result, _ = quality.run(referee, scenario, calendar, None, Path(tmp), extra=extra)
        out["calendar" if calendar else "compressed"] = result
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="*", type=Path, default=OWN)
    ap.add_argument(
        "--out", type=Path, default=HERE.parent / "monitor" / "data" / "join_model.toml"
    )
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--drop", default="", help="features to leave out, comma-separated")
    ap.add_argument(
        "--no-mix", dest="mix", action="store_false", help="no pairs of sets on one calendar"
    )
    ap.add_argument(
        "--loo", action="store_true", help="score each set with a model not trained on it"
    )
    args = ap.parse_args()
    if not quality.DEFAULT_REPLAY.exists():
        print(f"skipped: the referee {quality.DEFAULT_REPLAY} is absent")
        return 0
    import logging

    logging.basicConfig(level=logging.WARNING)
    per_set: dict[Path, list[Decision]] = {}
    # (a, b): the decisions of a and b on one calendar; out of a model scored on either.
    mixed: dict[tuple[Path, Path], list[Decision]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, scenario in enumerate(args.sets):
            found: list[Decision] = []
            for calendar in (False, True):
                reports, idf = replay(scenario, calendar)
                found += decisions(reports, idf)
            per_set[scenario] = found
            other = args.sets[(i + 1) % len(args.sets)]
            if args.mix and other != scenario:
                both = mix(scenario, other, Path(tmp) / "mixed.json")
                reports, idf = replay(both, True)
                mixed[(scenario, other)] = decisions(reports, idf)
            joins = sum(d.label >= 0 for d in found)
            print(f"{scenario.parent.name}: {len(found)} decisions, {joins} joins", flush=True)

    def without(held_out: Path | None) -> list[Decision]:
        return [d for s, found in per_set.items() if s != held_out for d in found] + [
            d for pair, found in mixed.items() if held_out not in pair for d in found
        ]

    everything = without(None)
    drop = frozenset(filter(None, args.drop.split(",")))
    weights, bias = fit(everything, args.l2, drop)
    names = ", ".join(s.parent.name for s in args.sets)
    header = [
        "The clusterer's join model: the log-odds that a report belongs to a candidate",
        "development rather than opening a new one, as weights over the evidence that",
        "monitor.cluster.EVIDENCE lists (a conditional logit). Written by",
        f"bench/train_cluster.py from {len(everything)} placements in our own sets",
        f"({names}), each replayed in compressed and calendar time.",
    ]
    args.out.write_text(model_toml(weights, bias, header, means(everything)), encoding="utf-8")
    print(f"wrote {args.out}")
    if not args.loo:
        return 0
    keys = ("expected", "true_positives", "false_positives", "duplicates", "f1")
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in [*args.sets, *(s for s in SHARED if s.exists())]:
            held = without(scenario)
            w, b = fit(held, args.l2, drop) if scenario in per_set else (weights, bias)
            path = Path(tmp) / f"{scenario.parent.name}.toml"
            path.write_text(model_toml(w, b, []), encoding="utf-8")
            for mode, result in score(scenario, path).items():
                line = json.dumps({k: result[k] for k in keys})
                print(f"{scenario.parent.name:8} {mode:10} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
