"""The same documents give the same developments and alerts whatever order the feeds'
answers arrive in (the pipeline places a poll's on-topic entries at its end)."""

from __future__ import annotations

from datetime import timedelta
from itertools import permutations

from sqlalchemy import select

from monitor.db import Database
from monitor.models import Alert, Development, Entry
from monitor.pipeline import Pipeline
from tests.conftest import Clock, rss
from tests.test_pipeline import fetched, item, make

# Three outlets: two report one strike (the later report in more detail), one reports a
# meeting. Written for this test.
STRIKE = {
    "title": "Israeli jets strike weapons depot near Damascus",
    "description": "Syrian state media said Israeli missiles hit an Iran-linked depot "
    "south of Damascus before dawn.",
}
STRIKE_LATER = {
    "title": "Syria says Israeli missiles hit Iran-linked depot near Damascus",
    "description": "The strike on the depot south of Damascus caused a fire, "
    "Syrian state media said, quoting a military source.",
}
MEETING = {
    "title": "Putin hosts Israel's prime minister for Kremlin talks on Syria",
    "description": "The Russian president and the Israeli prime minister discussed "
    "Syria and Iran's nuclear programme in Moscow.",
}


def outcome(p: Pipeline) -> tuple[set[frozenset[str]], set[str]]:
    """(the developments as sets of entry URLs, the primary URLs of those alerted)."""
    with p.db.session() as s:
        devs: dict[int, set[str]] = {}
        for e in s.scalars(select(Entry).where(Entry.development_id.is_not(None))):
            devs.setdefault(e.development_id or 0, set()).add(e.url or "")
        primaries = set()
        for a in s.scalars(select(Alert).where(Alert.kind == "development")):
            dev = s.get(Development, a.development_id)
            assert dev is not None and dev.primary_entry_id is not None
            primary = s.get(Entry, dev.primary_entry_id)
            assert primary is not None
            primaries.add(primary.url or "")
    return {frozenset(v) for v in devs.values()}, primaries


def test_arrival_order_does_not_change_developments_or_alerts(
    db_url: str, clock: Clock, tmp_path: object
) -> None:
    urls = [f"https://{n}.example/feed" for n in "abc"]
    docs = [
        rss([item(STRIKE, "https://a.example/1", clock.now - timedelta(minutes=40))]),
        rss([item(STRIKE_LATER, "https://b.example/1", clock.now - timedelta(minutes=20))]),
        rss([item(MEETING, "https://c.example/1", clock.now - timedelta(minutes=30))]),
    ]
    results = []
    for n, order in enumerate(permutations(range(3))):
        # The first order on the database under test, the others on SQLite files of their own.
        database = Database(db_url if n == 0 else f"sqlite:///{tmp_path}/{n}.db")
        database.upgrade()
        p = make(database, clock, urls, "http://127.0.0.1:9/hook")
        for i in order:
            p.process_result(fetched(database, urls[i], docs[i]))
        p.settle()
        results.append(outcome(p))
        database.dispose()
    first = results[0]
    # Two developments, the earliest report of each one names its alert.
    assert first == (
        {
            frozenset({"https://a.example/1", "https://b.example/1"}),
            frozenset({"https://c.example/1"}),
        },
        {"https://a.example/1", "https://c.example/1"},
    )
    assert all(r == first for r in results)
