"""`monitor explain URL`: why an entry matched (or not) and where it was grouped."""

from __future__ import annotations

from typing import Any

import click

from monitor import store
from monitor.cli.app import Context, cli
from monitor.models import Development, Entry, Feed


@cli.command()
@click.argument("url")
@click.pass_obj
def explain(obj: Context, url: str) -> None:
    """Show why the stored entry at URL did or did not match, and where it was grouped."""
    from monitor.match import Matcher, load_profile
    from monitor.match import explain as explain_match
    from monitor.normalize import canonical_url

    db = obj.database()
    canon = canonical_url(url)
    with db.session() as s:
        entry = store.entry_by_url(s, url, canon)
        if entry is None:
            raise click.ClickException(f"no stored entry has the URL {canon}")
        feed = s.get(Feed, entry.feed_id)
        profile = load_profile(obj.settings.matching.topics)
        matcher = Matcher(profile, obj.settings.matching.threshold)
        ex = explain_match(matcher, entry.title, entry.text)
        verdict = "MATCHED" if ex.result.relevant else "did not match"
        click.echo(
            f"{entry.title}\n  {entry.canonical_url or entry.url}\n  feed: "
            f"{feed.name if feed else '?'}; published {entry.published_at:%Y-%m-%d %H:%M}"
            f" UTC; revision {entry.revision}"
        )
        click.echo(
            f"\n{verdict}: best score {ex.result.best:.2f}, threshold {matcher.threshold:.2f}"
        )
        for topic in profile.topics:
            ts = ex.result.scores.get(topic.id)
            if ts is None:
                groups = " or ".join("+".join(g) for g in topic.require)
                click.echo(f"  {topic.id:18} -     (needs {groups} in one sentence)")
            else:
                click.echo(f"  {topic.id:18} {ts.score:.2f}")
        _explain_feedback(s, ex.result, entry)
        click.echo("\nconcepts found, sentence by sentence:")
        for sentence, hits in ex.sentences:
            found = ", ".join(f"{h.concept}:{h.surface}" for h in hits) or "-"
            click.echo(f"  {sentence[:100]}\n      -> {found}")
        if entry.development_id is None:
            click.echo("\nnot in a development")
            return
        dev = s.get(Development, entry.development_id)
        assert dev is not None
        others = store.development_size(s, dev.id)
        click.echo(
            f"\ndevelopment #{dev.id} ({dev.state}): {dev.title}\n  joined as: "
            f"{entry.join_reason or '-'}; {others} report(s) in it"
        )
        alert = store.alert_of(s, dev.id)
        if alert is not None:
            click.echo(f"  alert {alert.public_id} at {alert.created_at:%Y-%m-%d %H:%M} UTC")
        _explain_neighbours(obj, s, entry)


def _explain_neighbours(obj: Context, s: Any, entry: Entry) -> None:
    """How the join model weighed the developments near `entry` (the reports on topic
    published within the window before it, by development), what moved each decision
    most, and the five most alike reports with what each shares with it."""
    from monitor.cluster import (
        ClusterParams,
        Member,
        compare,
        crowd_of,
        describe,
        document_frequencies,
        features_from_json,
        load_join_model,
        weigh,
    )

    if not entry.cluster_features:
        return
    cfg = obj.settings.matching
    params = ClusterParams(window=cfg.cluster_window, join=cfg.join_probability)
    model = load_join_model(cfg.join_model)
    near = [e for e in store.clustered_near(s, entry, params.window) if e.cluster_features]
    mine = features_from_json(entry.cluster_features)
    theirs = [(e, features_from_json(e.cluster_features or {})) for e in near]
    idf = document_frequencies([mine, *(f for _, f in theirs)])
    before: dict[int, list[Member]] = {}
    for e, f in sorted(theirs, key=lambda p: p[0].published_at, reverse=True):
        if e.published_at <= entry.published_at and e.development_id is not None:
            near_dev = before.setdefault(e.development_id, [])
            if len(near_dev) < params.members:
                near_dev.append(
                    Member(
                        e.id, e.development_id, e.canonical_url, e.content_hash, e.published_at, f
                    )
                )
    # the developments around it when it was placed: those of the reports stored before it
    crowd = crowd_of(
        entry.published_at, ((e.published_at, e.development_id) for e in near if e.id < entry.id)
    )
    weighed = sorted(
        weigh(mine, entry.published_at, before, idf, model, crowd=crowd),
        key=lambda w: -w.probability,
    )
    if weighed:
        click.echo(
            f"\nthe developments before it, as the join model ({model.source}) weighed them "
            f"(joins at {params.join:.2f} or more):"
        )
        for w in weighed[:5]:
            click.echo(f"  #{w.development_id}: {w.probability:.2f} — {describe(w.reasons(model))}")
    rows = sorted(((compare(mine, f, idf), e) for e, f in theirs), key=lambda r: -r[0].similarity)
    if not rows:
        return
    click.echo("\nmost alike clustered reports (similarity; what they share):")
    for c, e in rows[:5]:
        same = (
            "same development"
            if e.development_id == entry.development_id
            else f"development #{e.development_id}"
        )
        conflicts = f"; but {', '.join(c.conflicts)}" if c.conflicts else ""
        click.echo(
            f"  {c.similarity:.2f}{' across languages' if c.cross else ''}"
            f" [{same}] {e.title[:70]}\n      shares {c.shared()}{conflicts}"
        )


def _explain_feedback(s: Any, result: Any, entry: Entry) -> None:
    """Readers' feedback this report is like, and what it does to the scores."""
    from monitor.cluster import features
    from monitor.store.feedback import lessons

    found = lessons(s).nearest(features(result, entry.language, entry.title).words)
    if found is None:
        return
    lesson, near = found
    if lesson.topic is not None:
        click.echo(
            f"\nfeedback: like entry #{lesson.entry_id}, which a reader said should have "
            f"alerted on {lesson.topic} (feedback #{lesson.feedback_id}): similarity "
            f"{near:.2f}, so {lesson.topic} is held at the threshold at least"
        )
        return
    click.echo(
        f"\nfeedback: like development #{lesson.development_id}, which a reader marked not "
        f"relevant ({lesson.reason}; feedback #{lesson.feedback_id}): similarity {near:.2f}, "
        f"so every score is multiplied by {1 - near:.2f}"
    )
