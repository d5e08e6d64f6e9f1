"""`monitor topics`: show the active profile, draft one from an article."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.cli.app import Context, cli


@cli.group()
def topics() -> None:
    """The topic profile that entries are matched against."""


@topics.command("show")
@click.pass_obj
def topics_show(obj: Context) -> None:
    """Print the active topic profile."""
    from monitor.match import load_profile

    profile = load_profile(obj.settings.matching.topics)
    threshold = obj.settings.matching.threshold or profile.threshold
    click.echo(f"profile: {profile.source}   threshold: {threshold}")
    for t in profile.topics:
        click.echo(f"\n[{t.id}] {t.title}\n  {' '.join(t.description.split())}")
        click.echo("  needs in one sentence: " + " | ".join(" + ".join(g) for g in t.require))
    by_concept: dict[str, list[str]] = {}
    for term in profile.terms:
        by_concept.setdefault(term.concept, []).append(term.key)
    click.echo("\nconcepts:")
    for concept, keys in sorted(by_concept.items()):
        click.echo(f"  {concept}: {', '.join(keys)}")


@topics.command("derive")
@click.argument("article", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the draft here instead of standard output.",
)
def topics_derive(article: Path, output: Path | None) -> None:
    """Draft a topic profile from ARTICLE (plain text, headline on the first line)."""
    import tomllib
    from importlib import resources

    from monitor.derive import derive

    base = tomllib.loads(resources.files("monitor").joinpath("data/topics.toml").read_text("utf-8"))
    draft = derive(article.read_text(encoding="utf-8"), base)
    if output:
        output.write_text(draft, encoding="utf-8")
        click.echo(f"draft written to {output}; edit it, then set [matching] topics", err=True)
    else:
        click.echo(draft)
