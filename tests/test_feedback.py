"""Readers' feedback: a development marked not relevant leaves the on-topic lists at once,
and reports like it, unseen when the feedback was given, score lower from then on, while
other news alerts as before; undone, it teaches nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor.feedback import NEAR, Lesson, Lessons, fingerprint, similarity
from monitor.match import Matcher, load_profile
from monitor.models import Development, Entry
from monitor.pipeline import Pipeline
from monitor.store import feedback as given
from tests.conftest import Clock, FeedServer, rss
from tests.test_web import Desktop, csrf_of, desktop, post  # noqa: F401  (the fixture)

# A kind of news a desk may not want (leaders' meetings), told for three different
# meetings, weeks apart, in other words each time; and news it does want.
MEETINGS = [
    (
        "Putin and Israel's prime minister discuss Syria in Kremlin talks",
        "The Russian president hosted the Israeli prime minister in Moscow for three hours "
        "of talks on Syria and Iran's nuclear programme.",
    ),
    (
        "Israeli premier meets Putin in Sochi, Syria and Iran on the agenda",
        "Israel's prime minister flew to Sochi for talks with the Russian president on "
        "Syria, Iran's nuclear programme and coordination between their militaries.",
    ),
    (
        "Putin receives Israel's prime minister; talks cover Syria and Iran",
        "The Kremlin said the Russian president and the Israeli prime minister discussed "
        "Syria and Iran's nuclear programme in talks that lasted into the evening.",
    ),
]
STRIKE = (
    "Israeli jets strike weapons depot near Damascus",
    "Syrian state media said Israeli missiles hit an Iran-linked depot near Damascus; "
    "Hezbollah fighters were among the dead.",
)


def words(title: str, text: str) -> dict[str, float]:
    from monitor.cluster import features

    matcher = Matcher(load_profile(None))
    return dict(features(matcher.match(title, text), "en", title).words)


def test_a_lesson_lowers_reports_like_it_and_leaves_the_rest() -> None:
    matcher = Matcher(load_profile(None))
    lesson_bag = fingerprint([words(*MEETINGS[0])])
    assert abs(sum(v * v for v in lesson_bag.values()) - 1) < 1e-3
    lessons = Lessons((Lesson(7, 3, "wrong-person", lesson_bag),))
    like = words(*MEETINGS[1])
    assert similarity(fingerprint([like]), lesson_bag) >= NEAR
    before = matcher.match(*MEETINGS[1])
    after = lessons.apply(before, like)
    assert before.relevant and not after.relevant
    assert all(
        a.score < b.score
        for a, b in zip(after.scores.values(), before.scores.values(), strict=True)
    )
    assert any("feedback #7" in e for ts in after.scores.values() for e in ts.evidence)
    # Other news is untouched, and no lessons change nothing.
    strike = matcher.match(*STRIKE)
    assert lessons.apply(strike, words(*STRIKE)) == strike
    assert Lessons().apply(before, like) == before


def serve(feed_server: FeedServer, clock: Clock, path: str, stories: list[tuple[str, str]]) -> str:
    from tests.test_pipeline import item

    items = [
        item(
            {"title": t, "description": d},
            f"https://a.example/{abs(hash(t)):x}",
            clock.now,
            title=t,
        )
        for t, d in stories
    ]
    return feed_server.serve(path, rss(items))


def pipeline(tmp_path: Path, name: str, url: str, clock: Clock) -> Pipeline:
    from monitor.config import Settings
    from monitor.db import Database

    db_url = f"sqlite:///{tmp_path / name}.db"
    db = Database(db_url)
    db.upgrade()
    p = Pipeline(
        Settings(database={"url": db_url}, service={"processes": 0}, feeds=[{"url": url}]),
        db,
        clock=clock,
    )
    p.sync_feeds()
    return p


def alerted(p: Pipeline) -> set[str]:
    with p.db.session() as s:
        return set(s.scalars(select(Development.title).where(Development.state == "alerted")))


def test_feedback_after_one_poll_changes_later_polls_on_similar_unseen_reports(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """Two desks read the same feed; one reader marks the first meeting not relevant.
    Weeks later a second meeting (other words, never seen) alerts on the desk without
    feedback only; the strike alerts on both. Undone, the third meeting alerts again."""
    clock = Clock()
    url = serve(feed_server, clock, "/news.xml", [MEETINGS[0]])
    taught, control = (pipeline(tmp_path, n, url, clock) for n in ("taught", "control"))
    for p in (taught, control):
        asyncio.run(p.poll())
        assert alerted(p) == {MEETINGS[0][0]}
    with taught.db.session() as s:
        first = s.scalar(select(Development.id))
        assert first is not None
        fb = given.not_relevant(s, first, "wrong-person", clock.now)
    with taught.db.session() as s:
        assert s.get(Development, first).state == "dismissed"  # type: ignore[union-attr]

    clock.advance(timedelta(days=30))
    serve(feed_server, clock, "/news.xml", [MEETINGS[1], STRIKE])
    for p in (taught, control):
        asyncio.run(p.poll())
    assert alerted(control) == {MEETINGS[0][0], MEETINGS[1][0], STRIKE[0]}
    assert alerted(taught) == {STRIKE[0]}
    with taught.db.session() as s:
        second = s.scalar(select(Entry).where(Entry.title == MEETINGS[1][0]))
        assert second is not None and not second.relevant
        evidence = [e for m in second.matches for e in m.evidence]
        assert any(f"feedback #{fb.id}" in e for e in evidence)

    with taught.db.session() as s:
        given.undo(s, fb.id, clock.now)
        assert s.get(Development, first).state == "alerted"  # type: ignore[union-attr]
    clock.advance(timedelta(days=30))
    serve(feed_server, clock, "/news.xml", [MEETINGS[2]])
    asyncio.run(taught.poll())
    assert MEETINGS[2][0] in alerted(taught)
    for p in (taught, control):
        p.close()
        p.db.dispose()


def test_feedback_on_the_desk_is_applied_at_once_shown_and_undoable(
    desktop: Desktop,  # noqa: F811
) -> None:
    talks, strike = desktop.stories()
    page = desktop.get(f"/developments/{talks}").text
    token = csrf_of(page)
    # Without the desk's token (a form on another site), nothing happens.
    assert post(desktop, f"/developments/{talks}/feedback", reason="off-topic").status_code == 422
    forged = post(desktop, f"/developments/{talks}/feedback", reason="roundup", csrf="0" * 64)
    assert forged.status_code == 403
    assert desktop.get(f"/api/developments/{talks}/feedback").json() == []

    done = post(desktop, f"/developments/{talks}/feedback", reason="roundup", csrf=token)
    assert done.status_code == 303 and done.headers["location"] == f"/developments/{talks}"
    listed = desktop.get("/api/developments").json()["developments"]
    assert [d["id"] for d in listed] == [strike]  # it left the on-topic list at once
    dismissed = desktop.get("/api/developments", state="dismissed").json()["developments"]
    assert [d["id"] for d in dismissed] == [talks]
    (fb,) = desktop.get(f"/api/developments/{talks}/feedback").json()
    assert (fb["kind"], fb["reason"], fb["undone_at"]) == ("not-relevant", "roundup", None)
    page = desktop.get(f"/developments/{talks}").text
    assert "not-relevant (roundup)" in page and ">Undo</button>" in page

    undone = post(desktop, f"/feedback/{fb['id']}/undo", csrf=token)
    assert undone.status_code == 303
    assert {d["id"] for d in desktop.get("/api/developments").json()["developments"]} == {
        talks,
        strike,
    }
    # The API's twins: JSON in, the same effect.
    r = httpx.post(f"{desktop.url}/api/developments/{strike}/feedback", json={"reason": "other"})
    assert r.status_code == 201 and r.json()["development_id"] == strike
    assert httpx.post(f"{desktop.url}/api/feedback/{r.json()['id']}/undo").json()["undone_at"]
    bad = httpx.post(f"{desktop.url}/api/developments/{strike}/feedback", json={"reason": "meh"})
    assert bad.status_code == 422
    missing = httpx.post(f"{desktop.url}/api/developments/999999/feedback", json={})
    assert missing.status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_monitor_explain_names_the_feedback_a_report_is_like(
    desktop: Desktop,  # noqa: F811
    tmp_path: Path,
) -> None:
    talks, _ = desktop.stories()
    with desktop.pipeline.db.session() as s:
        fb = given.not_relevant(s, talks, "off-topic", desktop.pipeline.clock())
    from click.testing import CliRunner

    from monitor.cli import cli

    cfg = tmp_path / "explain.toml"
    cfg.write_text(f'[database]\nurl = "{desktop.pipeline.db.url}"\n[web]\nlisten = ""\n')
    out = CliRunner().invoke(cli, ["--config", str(cfg), "explain", "https://n2.example/talks"])
    assert out.exit_code == 0, out.output
    assert f"like development #{talks}" in out.output and f"feedback #{fb.id}" in out.output
