"""Feedback at the scale of a replay: a simulated reader corrects each poll's alerts from
the scenario's truth, and the later polls are scored against a run without feedback.

After every poll up to --until (default: the first half of the polls), the reader looks
at that poll's alerts, as an analyst at a desk would: an alert on a development the truth
calls irrelevant is marked not relevant (off-topic); an alert on a development already
alerted is merged into the first one ("same as"); an alert that mixes reports of two
developments has the stray reports split off ("not part of this"). Nothing is said about
what was not alerted. The polls after --until are then scored for both runs (same
scenario, same pipeline, in process: `quality.py`), so what is printed is what the
feedback changed on news it was not given about.

    python bench/feedback.py SCENARIO.json [--calendar] [--until K]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402


class Reader:
    """Feedback from the truth, on each poll's alerts."""

    def __init__(self, sc: dict[str, Any], until: int) -> None:
        self.truth = {it["url"]: it for it in sc["items"]}
        self.devs = sc["_devs"]
        self.until = until
        self.first_alert: dict[str, int] = {}  # truth development → monitor development
        self.given: dict[str, int] = {"not-relevant": 0, "same-as": 0, "not-part": 0}

    def __call__(self, k: int, pipeline: Any, alerts: list[dict[str, Any]]) -> None:
        from sqlalchemy import select

        from monitor.models import Development, Entry
        from monitor.store import feedback as given

        if k > self.until:
            return
        now = datetime.now(UTC)
        with pipeline.db.session() as s:
            for alert in alerts:
                dev = s.get(Development, alert["development"])
                if dev is None or dev.state not in ("alerted",):
                    continue
                rows = list(s.scalars(select(Entry).where(Entry.development_id == dev.id)))
                owners = [self.truth[e.url]["development"] for e in rows if e.url in self.truth]
                if not owners:
                    continue
                primary = next(
                    (e for e in rows if e.id == dev.primary_entry_id and e.url in self.truth), None
                )
                owner = self.truth[primary.url]["development"] if primary else owners[0]
                if self.devs[owner]["label"] == "irrelevant":
                    given.not_relevant(s, dev.id, "off-topic", now)
                    self.given["not-relevant"] += 1
                    continue
                for e in rows:  # reports of other developments: not part of this one
                    stray = e.url in self.truth and self.truth[e.url]["development"] != owner
                    if stray and len(rows) > 1:
                        given.not_part(s, dev.id, e.id, now)
                        self.given["not-part"] += 1
                        rows = [r for r in rows if r.id != e.id]
                earlier = self.first_alert.get(owner)
                if earlier is not None and earlier != dev.id:
                    given.same_as(s, dev.id, earlier, now)
                    self.given["same-as"] += 1
                else:
                    self.first_alert.setdefault(owner, dev.id)


def later(referee: Any, sc: dict[str, Any], result: dict[str, Any], after: int) -> dict[str, int]:
    """Verdicts of the alerts written after poll `after`."""
    counts: dict[str, int] = {}
    for verdict, _dev, poll, _urls in result["rows"]:
        if poll > after:
            counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", type=Path)
    ap.add_argument("--calendar", action="store_true")
    ap.add_argument("--until", type=int, help="the last poll the reader gives feedback on")
    args = ap.parse_args()
    if not quality.DEFAULT_REPLAY.exists():
        print(f"skipped: the referee {quality.DEFAULT_REPLAY} is absent")
        return 0
    referee = quality.load_referee(quality.DEFAULT_REPLAY)
    sc = referee.load(args.scenario)
    polls = referee.timeline(sc, datetime.now(UTC), args.calendar)
    until = args.until if args.until is not None else len(polls) // 2
    reader = Reader(sc, until)
    runs = {}
    for name, hook in (("without feedback", None), ("with feedback", reader)):
        with tempfile.TemporaryDirectory() as tmp:
            result, _ = quality.run(
                referee, args.scenario, args.calendar, None, Path(tmp), after_poll=hook
            )
        runs[name] = result
    mode = "calendar" if args.calendar else "compressed"
    print(f"{args.scenario.parent.name} {mode}: {len(polls)} polls, reader until poll {until}")
    print(f"feedback given: {json.dumps(reader.given)}")
    keys = ("true_positives", "false_positives", "duplicates", "precision", "recall", "f1")
    for name, result in runs.items():
        whole = {k: result[k] for k in keys}
        print(f"{name:17} whole run {json.dumps(whole)}")
        print(f"{'':17} after poll {until}: {json.dumps(later(referee, sc, result, until))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
