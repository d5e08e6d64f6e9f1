"""Score the matcher and clusterer on a replay scenario, in one process, in seconds.

The referee (`../shared/scenarios/replay.py`) runs the real `monitor poll` once per poll
against a local feed server: the truth, but a minute or more per scenario. This bench
drives the same `Pipeline` in-process instead: it renders each outlet's feed with the
referee's own functions (imported from its file at run time, not copied), hands the
documents to `Pipeline.process_result` with the clock set to the poll's time, reads the
alerts the pipeline wrote, and scores them with the referee's `score`. What it skips is
HTTP, conditional requests and delivery, none of which decide what is alerted.

    python bench/quality.py SCENARIO.json [SCENARIO.json ...] [--calendar] [--shuffle N]
        [--replay ../shared/scenarios/replay.py] [--verbose] [--trace] [--pairs FILE]

`--shuffle N` processes each poll's feeds in N different random orders and reports
whether the alerted developments differ (they must not: see tests/test_determinism.py).
`--trace` shows, for each missed development, which development its reports joined and
what the closest report of another event shares with them (the clusterer's errors);
`--pairs FILE` writes every pair of clustered reports with what they share and the truth.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import random
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import select

HERE = Path(__file__).resolve().parent
DEFAULT_REPLAY = HERE.parent.parent / "shared" / "scenarios" / "replay.py"


def load_referee(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("replay_referee", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the referee at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(
    referee: ModuleType,
    scenario: Path,
    calendar: bool,
    order_seed: int | None,
    folder: Path,
    trace: bool = False,
    pairs: Path | None = None,
    inspect: Callable[[dict[str, Any], list[Any]], None] | None = None,
    after_poll: Callable[[int, Any, list[dict[str, Any]]], None] | None = None,
    extra: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """Replay `scenario` through an in-process pipeline; (score, alerted development ids
    in the order alerted)."""
    from monitor.config import load_settings
    from monitor.db import Database
    from monitor.fetch import FetchResult
    from monitor.models import Alert, Development, Entry, Feed
    from monitor.pipeline import Pipeline

    sc = referee.load(scenario)
    now = datetime.now(UTC).replace(microsecond=0)
    polls = referee.timeline(sc, now, calendar)
    cfg = folder / "monitor.toml"
    lines = [
        "[database]",
        f'url = "sqlite:///{(folder / "monitor.db").as_posix()}"',
        "[alerts]",
        'backfill = "24h"',
        "[service]",
        "processes = 0",
        "",
    ]
    for o in sc["outlets"]:
        lines += [
            "[[feeds]]",
            f'url = "http://127.0.0.1:9/feeds/{o["id"]}.xml"',
            f'name = "{o["name"]}"',
            "",
        ]
    lines += ["[[channels]]", 'type = "webhook"', 'url = "http://127.0.0.1:9/hook"', "", extra]
    cfg.write_text("\n".join(lines), encoding="utf-8")
    settings = load_settings(cfg, use_defaults=False)
    db = Database(settings.database.url or "")
    db.upgrade()
    clock = {"now": polls[0]}
    pipeline = Pipeline(settings, db, clock=lambda: clock["now"])
    pipeline.sync_feeds()
    with db.session() as s:
        feed_ids = {
            f.url.rsplit("/", 1)[1].removesuffix(".xml"): f.id for f in s.scalars(select(Feed))
        }
    rng = random.Random(order_seed)
    alerts: list[dict[str, Any]] = []
    seen_alerts: set[int] = set()
    for k, at in enumerate(polls):
        clock["now"] = at
        if after_poll is not None:
            pipeline.read_feedback()  # what the reader said after the last poll
        outlets = [o["id"] for o in sc["outlets"]]
        if order_seed is not None:
            rng.shuffle(outlets)
        for oid in outlets:
            body, ctype = referee.render(sc, oid, k, polls)
            pipeline.process_result(
                FetchResult(
                    feed_ids[oid], f"http://127.0.0.1:9/feeds/{oid}.xml", 200, body, None, ctype
                )
            )
        if hasattr(pipeline, "settle"):  # (older versions placed entries as they came)
            pipeline.settle()
        with db.session() as s:
            for alert in s.scalars(
                select(Alert).where(Alert.kind == "development").order_by(Alert.id)
            ):
                if alert.id in seen_alerts:
                    continue
                seen_alerts.add(alert.id)
                dev = s.get(Development, alert.development_id)
                assert dev is not None
                rows = list(
                    s.scalars(
                        select(Entry).where(Entry.development_id == dev.id).order_by(Entry.id)
                    )
                )
                rows.sort(key=lambda e: e.id != dev.primary_entry_id)
                alerts.append(
                    {
                        "id": alert.public_id,
                        "poll": k,
                        "development": dev.id,
                        "body": {"articles": [{"url": e.url} for e in rows]},
                    }
                )
        if after_poll is not None:
            after_poll(k, pipeline, [a for a in alerts if a["poll"] == k])
    result = referee.score(sc, alerts)
    if trace or pairs or inspect:
        with db.session() as s:
            rows = list(s.scalars(select(Entry).order_by(Entry.id)))
            if inspect:
                inspect(sc, rows)
            if trace:
                print_trace(sc, result, rows)
            if pairs:
                write_pairs(sc, rows, pairs)
    db.dispose()
    alerted = [dev for verdict, dev, _, _ in result["rows"] if dev]
    return result, alerted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="+", type=Path)
    ap.add_argument("--calendar", action="store_true")
    ap.add_argument("--shuffle", type=int, default=0)
    ap.add_argument("--replay", type=Path, default=DEFAULT_REPLAY)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--pairs", type=Path, help="write every pair of clustered reports here")
    ap.add_argument(
        "--trace", action="store_true", help="where each missed development's reports went"
    )
    args = ap.parse_args()
    if not args.replay.exists():
        print(f"skipped: the referee {args.replay} is absent")
        return 0
    logging.basicConfig(level=logging.WARNING)
    referee = load_referee(args.replay)
    keys = (
        "expected",
        "alerts",
        "true_positives",
        "false_positives",
        "duplicates",
        "precision",
        "recall",
        "f1",
    )
    for scenario in args.scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            result, alerted = run(
                referee, scenario, args.calendar, None, Path(tmp), args.trace, args.pairs
            )
        line = {k: result[k] for k in keys}
        mode = "calendar" if args.calendar else "compressed"
        print(f"{scenario.parent.name:10} {mode:10} {json.dumps(line)}")
        if args.verbose:
            for verdict, dev, k, urls in result["rows"]:
                if verdict not in ("ok", "ok-late"):
                    print(f"   poll {k:<3} {verdict:15} {dev}  {urls[:1]}")
            for dev in result["missed"]:
                print(f"   missed          {dev}  {sc_summary(referee, scenario, dev)}")
        for i in range(args.shuffle):
            with tempfile.TemporaryDirectory() as tmp:
                other, again = run(referee, scenario, args.calendar, i, Path(tmp))
            same = sorted(again) == sorted(alerted)
            print(f"   order {i}: f1 {other['f1']}, same developments alerted: {same}")
    return 0


def print_trace(sc: dict[str, Any], result: dict[str, Any], entries: list[Any]) -> None:
    """For each missed development: which development its reports joined, whose reports
    those were (the truth), and what the closest pair shares: the errors of clustering."""
    from monitor.cluster import Idf, compare, features_from_json

    truth = {it["url"]: it for it in sc["items"]}
    idf = Idf()
    feats = {}
    for e in entries:
        if e.cluster_features:
            feats[e.id] = features_from_json(e.cluster_features)
            idf.add(feats[e.id])
    by_dev: dict[int, list[Any]] = {}
    for e in entries:
        if e.development_id is not None:
            by_dev.setdefault(e.development_id, []).append(e)
    for dev in result["missed"]:
        items = [e for e in entries if truth.get(e.url, {}).get("development") == dev]
        print(f"-- {dev}: {sc['_devs'][dev]['summary'][:80]}")
        if not items:
            print("     no entry stored")
        for e in items:
            it = truth[e.url]
            if e.development_id is None or not e.relevant:
                print(f"     {it['id']} {e.join_reason} relevant={e.relevant} score={e.score:.2f}")
                continue
            others = [
                o
                for o in by_dev[e.development_id]
                if o.id < e.id and o.id in feats and truth.get(o.url, {}).get("development") != dev
            ]
            pairs = [(compare(feats[e.id], feats[o.id], idf), o) for o in others if e.id in feats]
            best = max(pairs, key=lambda p: p[0].similarity) if pairs else None
            owners = sorted(
                {truth.get(o.url, {}).get("development", "?") for o in by_dev[e.development_id]}
            )
            line = f"     {it['id']} {e.join_reason} -> dev {e.development_id} of {owners}"
            if best:
                c, o = best
                line += (
                    f" via {truth.get(o.url, {}).get('id')} sim={c.similarity}"
                    f" e={list(c.entities)} x={list(c.names)} n={list(c.numbers)}"
                    f" w={list(c.words)[:5]}"
                )
            print(line)


def write_pairs(sc: dict[str, Any], entries: list[Any], out: Path) -> None:
    """Every pair of clustered reports with what they share and whether the truth puts
    them in one development: the data to judge a similarity rule on."""
    from monitor.cluster import Idf, days_apart, features_from_json, similarity

    truth = {it["url"]: it for it in sc["items"]}
    rows = [
        (e, features_from_json(e.cluster_features), truth[e.url])
        for e in entries
        if e.cluster_features and e.relevant and e.url in truth
    ]
    idf = Idf()
    for e in entries:
        if e.cluster_features:
            idf.add(features_from_json(e.cluster_features))
    found = []
    for i, (_ea, a, ta) in enumerate(rows):
        for _eb, b, tb in rows[:i]:
            sim, cross = similarity(a, b, idf)
            heads = a.heads | b.heads
            found.append(
                {
                    "a": ta["id"],
                    "b": tb["id"],
                    "same": ta["development"] == tb["development"],
                    "cross": cross,
                    "sim": round(sim, 3),
                    "round": [ta["round"], tb["round"]],
                    "ent": sorted((a.entities & b.entities) - heads),
                    "heads": sorted(a.entities & b.entities & heads),
                    "names": sorted(a.names & b.names),
                    "nums": sorted(a.numbers & b.numbers),
                    "kw": sorted(a.keywords & b.keywords),
                    "days_apart": days_apart(a.days, b.days),
                    "days_shared": sorted(a.days & b.days),
                    "place_conflict": bool(a.places and b.places and not a.places & b.places),
                    "idf_ent": round(
                        sum(idf.get("e:" + x) for x in (a.entities & b.entities) - heads), 2
                    ),
                    "idf_names": round(sum(idf.get("x:" + x) for x in a.names & b.names), 2),
                    "idf_nums": round(sum(idf.get("n:" + x) for x in a.numbers & b.numbers), 2),
                }
            )
    out.write_text(json.dumps(found), encoding="utf-8")


def sc_summary(referee: ModuleType, scenario: Path, dev: str) -> str:
    sc = referee.load(scenario)
    return str(sc["_devs"][dev]["summary"])[:90]


if __name__ == "__main__":
    sys.exit(main())
