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
    with desktop.pipeline.db.session() as s:  # the other way: a report it should alert on
        given.undo(s, fb.id, desktop.pipeline.clock())
        talk = s.scalar(select(Entry.id).where(Entry.url == "https://n0.example/talks"))
        assert talk is not None
        more = given.should_alert(s, talk, "russia-israel", desktop.pipeline.clock())
    out = CliRunner().invoke(cli, ["--config", str(cfg), "explain", "https://n2.example/talks"])
    assert f"should have alerted on russia-israel (feedback #{more.id})" in out.output


# One event told from two sides that share few words (the clusterer splits them), twice:
# a deconfliction agreement, then its renewal months later, each side in new words.
SIDES = [
    (
        (
            "Russia and Israel agree to keep their military hotline over Syria",
            "Moscow and Jerusalem will keep the deconfliction mechanism that lets Israeli "
            "jets avoid Russian forces in Syria, officials said.",
        ),
        (
            "Northern operations go on unhindered, general says",
            "Raids on Iranian targets go on at the same pace, the Israeli air force commander "
            "said.",
        ),
    ),
    (
        (
            "Russia and Israel renew their military hotline over Syria",
            "Moscow and Jerusalem renewed the deconfliction mechanism that keeps Israeli "
            "jets clear of Russian forces in Syria, officials said.",
        ),
        (
            "Operations in the north continue unhindered, general says",
            "The Israeli air force commander said raids on Iranian targets continue at the "
            "same pace.",
        ),
    ),
]


def told_apart(p: Pipeline, feed_server: FeedServer, clock: Clock, pair: int) -> None:
    """One side of the event, then the other two days later, in other words: the
    clusterer alone takes them for two events."""
    first, second = SIDES[pair]
    serve(feed_server, clock, "/sides.xml", [first])
    asyncio.run(p.poll())
    clock.advance(timedelta(days=2))
    serve(feed_server, clock, "/sides.xml", [second, first])
    asyncio.run(p.poll())


def test_a_merge_teaches_the_clusterer_to_join_later_reports_like_the_two(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = Clock()
    url = serve(feed_server, clock, "/sides.xml", [])
    taught, control = (pipeline(tmp_path, n, url, clock) for n in ("taught", "control"))
    for p in (taught, control):
        told_apart(p, feed_server, clock, 0)
        assert len(alerted(p)) == 2  # split: two alerts for one event
    with taught.db.session() as s:
        a, b = s.scalars(select(Development.id).order_by(Development.id)).all()
        fb = given.same_as(s, b, a, clock.now)
    with taught.db.session() as s:
        assert s.get(Development, b).state == "merged"  # type: ignore[union-attr]
        assert set(s.scalars(select(Entry.development_id))) == {a}  # its reports moved

    clock.advance(timedelta(days=90))
    for p in (taught, control):
        before = len(alerted(p))
        told_apart(p, feed_server, clock, 1)
        assert len(alerted(p)) - before == (1 if p is taught else 2)
    with taught.db.session() as s:
        joined = s.scalar(select(Entry).where(Entry.title == SIDES[1][1][0]))
        assert joined is not None and f"fb#{fb.id}" in (joined.join_reason or "")
    for p in (taught, control):
        p.close()
        p.db.dispose()


# Two events of one kind that the clusterer joins (a meeting, then a deal on the same
# things announced hours later, which a reader calls another event), twice, in new words
# the second time.
LOOKALIKES = [
    (
        MEETINGS[0],
        (
            "Putin and Israel's prime minister agree to widen Syria coordination",
            "The Russian president and the Israeli prime minister agreed to widen military "
            "coordination over Syria and to keep talking about Iran's nuclear programme.",
        ),
    ),
    (
        MEETINGS[1],
        (
            "Israeli premier and Putin settle on closer military contacts over Syria",
            "Israel's prime minister and the Russian president settled on closer contacts "
            "between their militaries in Syria and on Iran's nuclear programme.",
        ),
    ),
]


def test_a_split_teaches_the_clusterer_to_hold_later_reports_like_the_two_apart(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = Clock()
    url = serve(feed_server, clock, "/deals.xml", [])
    taught, control = (pipeline(tmp_path, n, url, clock) for n in ("taught", "control"))

    def told(p: Pipeline, pair: int) -> int:
        """Developments the pair landed in."""
        meeting, deal = LOOKALIKES[pair]
        serve(feed_server, clock, "/deals.xml", [meeting])
        asyncio.run(p.poll())
        clock.advance(timedelta(hours=6))
        serve(feed_server, clock, "/deals.xml", [deal, meeting])
        asyncio.run(p.poll())
        with p.db.session() as s:
            titles = (meeting[0], deal[0])
            return len(set(s.scalars(select(Entry.development_id).where(Entry.title.in_(titles)))))

    for p in (taught, control):
        assert told(p, 0) == 1  # joined: the deal never alerted
    with taught.db.session() as s:
        deal = s.scalar(select(Entry).where(Entry.title == LOOKALIKES[0][1][0]))
        assert deal is not None and deal.development_id is not None
        meeting_dev = deal.development_id
        fb = given.not_part(s, meeting_dev, deal.id, clock.now)
    with taught.db.session() as s:
        moved = s.get(Entry, deal.id)
        assert moved is not None and moved.development_id not in (None, meeting_dev)

    clock.advance(timedelta(days=90))
    assert told(control, 1) == 1
    assert told(taught, 1) == 2  # held apart, like the two the reader split
    with taught.db.session() as s:
        given.undo(s, fb.id, clock.now)  # the deal goes back where it was
        back = s.get(Entry, deal.id)
        assert back is not None and back.development_id == meeting_dev
    for p in (taught, control):
        p.close()
        p.db.dispose()


def test_a_merge_and_a_split_on_the_desk_are_applied_at_once_and_undone(
    desktop: Desktop,  # noqa: F811
) -> None:
    talks, strike = desktop.stories()
    token = csrf_of(desktop.get(f"/developments/{strike}").text)
    merged = post(
        desktop, f"/developments/{strike}/feedback", csrf=token, kind="same-as", other=talks
    )
    assert merged.status_code == 303 and merged.headers["location"] == f"/developments/{talks}"
    assert desktop.get(f"/api/developments/{talks}").json()["development"]["reports"] == 6
    listed = {d["id"] for d in desktop.get("/api/developments").json()["developments"]}
    assert listed == {talks}  # the merged one left the list
    page = desktop.get(f"/developments/{strike}").text
    assert f'Merged into <a href="/developments/{talks}">' in page and "Merge into it" not in page
    (fb,) = desktop.get(f"/api/developments/{strike}/feedback").json()
    again = post(
        desktop, f"/developments/{strike}/feedback", csrf=token, kind="same-as", other=talks
    )
    assert again.status_code == 422  # once
    post(desktop, f"/feedback/{fb['id']}/undo", csrf=token)
    assert desktop.get(f"/api/developments/{talks}").json()["development"]["reports"] == 4
    assert desktop.get(f"/api/developments/{strike}").json()["development"]["reports"] == 2

    reports = desktop.get(f"/api/developments/{talks}").json()["reports"]
    one = reports[-1]["id"]
    split = post(desktop, f"/developments/{talks}/feedback", csrf=token, kind="not-part", entry=one)
    assert split.status_code == 303
    assert desktop.get(f"/api/developments/{talks}").json()["development"]["reports"] == 3
    r = httpx.post(
        f"{desktop.url}/api/developments/{talks}/feedback",
        json={"kind": "not-part", "entry_id": one},
    )
    assert r.status_code == 422  # no longer part of it
    (fb,) = [f for f in desktop.get(f"/api/developments/{talks}/feedback").json()]
    assert (fb["kind"], fb["entry_id"]) == ("not-part", one)
    assert "Not part of this" in desktop.get(f"/developments/{talks}").text
    httpx.post(f"{desktop.url}/api/feedback/{fb['id']}/undo")
    assert desktop.get(f"/api/developments/{talks}").json()["development"]["reports"] == 4
    bad = httpx.post(f"{desktop.url}/api/developments/{talks}/feedback", json={"kind": "same-as"})
    assert bad.status_code == 422 and "which development" in bad.json()["detail"]


# Reports a profile scores on topic but below the bar (the link sits deep in the body).
GAS = [
    (
        "Gas exports: a quiet year for the eastern Mediterranean fields",
        "Output at the Leviathan field rose by a tenth. Buyers in Egypt and Jordan took most "
        "of it. Prices were steady through the autumn. Officials in Israel said a pipeline to "
        "Russia-linked traders was not on the table.",
    ),
    (
        "Mediterranean gas: output climbs again at the offshore fields",
        "Production at Leviathan and Tamar grew again this quarter. Egypt remained the main "
        "buyer. Analysts expect steady prices. Israel's energy ministry said talks with "
        "Russian traders had not resumed.",
    ),
]


def test_a_should_alert_lesson_holds_reports_like_it_on_its_topic() -> None:
    matcher = Matcher(load_profile(None))
    bag = fingerprint([words(*GAS[0])])
    lessons = Lessons((Lesson(9, 4, "other", bag, "russia-israel", 21),))
    before = matcher.match(*GAS[1])
    assert before.scores and not before.relevant
    after = lessons.apply(before, words(*GAS[1]))
    assert after.relevant and after.topics == ["russia-israel"]
    assert "feedback #9: like entry #21" in after.scores["russia-israel"].evidence[0]
    strike = matcher.match(*STRIKE)
    assert lessons.apply(strike, words(*STRIKE)) == strike  # other news untouched


def test_should_alert_after_one_poll_alerts_later_reports_like_it(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    clock = Clock()
    url = serve(feed_server, clock, "/gas.xml", [GAS[0]])
    taught, control = (pipeline(tmp_path, n, url, clock) for n in ("taught", "control"))
    for p in (taught, control):
        asyncio.run(p.poll())
        assert alerted(p) == set()  # below the bar
    with taught.db.session() as s:
        first = s.scalar(select(Entry.id).where(Entry.title == GAS[0][0]))
        assert first is not None
        fb = given.should_alert(s, first, "russia-israel", clock.now)
    clock.advance(timedelta(days=60))
    serve(feed_server, clock, "/gas.xml", [GAS[1]])
    for p in (taught, control):
        asyncio.run(p.poll())
    assert GAS[1][0] in alerted(taught) and GAS[1][0] not in alerted(control)
    with taught.db.session() as s:
        second = s.scalar(select(Entry).where(Entry.title == GAS[1][0]))
        assert second is not None and second.relevant
        assert any(f"feedback #{fb.id}" in e for m in second.matches for e in m.evidence)
    for p in (taught, control):
        p.close()
        p.db.dispose()


def test_should_have_alerted_on_the_desk_alerts_now(
    desktop: Desktop,  # noqa: F811
) -> None:
    from monitor.models import Alert

    with desktop.pipeline.db.session() as s:
        local = s.scalar(select(Entry).where(Entry.title == "Local news 2"))
        assert local is not None and local.development_id is None
        local_id = local.id
    page = desktop.get("/search", q="lanes").text
    assert "Should have alerted" in page
    token = csrf_of(page)
    bad = post(desktop, f"/entries/{local_id}/should-alert", csrf=token, topic="cycling")
    assert bad.status_code == 422
    done = post(desktop, f"/entries/{local_id}/should-alert", csrf=token, topic="syria")
    assert done.status_code == 303
    dev_id = int(done.headers["location"].rsplit("/", 1)[1])
    with desktop.pipeline.db.session() as s:
        dev = s.get(Development, dev_id)
        assert dev is not None and dev.state == "alerted" and "syria" in dev.topics
        alert = s.scalar(select(Alert).where(Alert.development_id == dev_id))
        assert alert is not None and alert.deliveries  # sent at the next delivery tick
    feedback = desktop.get(f"/api/developments/{dev_id}/feedback").json()
    assert [f["kind"] for f in feedback] == ["should-alert"]
    missing = httpx.post(f"{desktop.url}/api/entries/999999/should-alert", json={"topic": "syria"})
    assert missing.status_code == 404
