"""What an alert says: the versioned JSON payload and its text and HTML renderings. Pure."""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

PAYLOAD_VERSION = 1


def new_alert_id() -> str:
    """A unique, stable alert id; also the Standard Webhooks `webhook-id`."""
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class ArticleRef:
    url: str
    title: str
    source: str
    published: datetime
    language: str | None = None
    summary: str = ""


@dataclass(frozen=True)
class TopicRef:
    id: str
    title: str
    score: float
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "score": self.score,
            "evidence": list(self.evidence),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TopicRef:
        return cls(
            str(d["id"]),
            str(d.get("title") or d["id"]),
            float(d.get("score", 0.0)),
            [str(e) for e in d.get("evidence") or ()],
        )


@dataclass(frozen=True)
class AlertContent:
    id: str
    kind: str
    created_at: datetime
    title: str
    score: float
    topics: list[TopicRef]
    articles: list[ArticleRef]  # primary first
    development_id: int | None = None


def payload(a: AlertContent) -> dict[str, Any]:
    """The webhook body (documented in the README). Version bumps only on breaking change."""
    return {
        "version": PAYLOAD_VERSION,
        "type": f"{a.kind}.new",
        "id": a.id,
        "created_at": a.created_at.isoformat(),
        "development": {"id": a.development_id, "title": a.title, "score": a.score},
        "title": a.title,
        "topics": [t.to_json() for t in a.topics],
        "why": why(a),
        "articles": [
            {
                "url": r.url,
                "title": r.title,
                "source": r.source,
                "published": r.published.isoformat(),
                "language": r.language,
                "summary": r.summary[:500],
            }
            for r in a.articles
        ],
    }


def reason(evidence: str) -> tuple[str, list[tuple[str, str]]]:
    """An evidence line ("sentence [concept:term, …]", as the matcher writes it) as the
    sentence and its (concept, term) pairs."""
    sentence, sep, tags = evidence.rpartition(" [")
    if not sep or not tags.endswith("]"):
        return evidence, []
    pairs = []
    for tag in tags[:-1].split(", "):
        concept, _, term = tag.partition(":")
        if concept and term:
            pairs.append((concept, term))
    return sentence, pairs


def why(a: AlertContent) -> list[dict[str, Any]]:
    """The evidence, structured: per topic, the sentence and the terms that matched."""
    out = []
    for t in a.topics:
        for ev in t.evidence:
            sentence, pairs = reason(ev)
            out.append(
                {
                    "topic": t.id,
                    "sentence": sentence,
                    "terms": [{"concept": c, "term": w} for c, w in pairs],
                }
            )
    return out


def subject(a: AlertContent) -> str:
    topics = ", ".join(t.title for t in a.topics[:2])
    head = f"[monitor] {a.title}"
    return " ".join((f"{head} — {topics}" if topics else head).split())


def _when(r: ArticleRef, tz: ZoneInfo) -> str:
    local = r.published.astimezone(tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or tz.key}"


def render_text(a: AlertContent, tz: str = "UTC") -> str:
    """The plain-text body: times in the channel's time zone `tz`."""
    zone = ZoneInfo(tz)
    lines = [a.title, ""]
    if a.kind == "digest":
        for i, r in enumerate(a.articles, 1):
            lines.append(f"{i}. {r.title} — {r.source}, {_when(r, zone)}")
            lines.append(f"   {r.url}")
        lines += ["", f"Digest {a.id}"]
        return "\n".join(lines)
    if a.topics:
        lines.append("Topics: " + ", ".join(f"{t.title} ({t.score:.2f})" for t in a.topics))
        ev = next((t.evidence[0] for t in a.topics if t.evidence), None)
        if ev:
            lines.append(f"Why: {reason(ev)[0]}")
        lines.append("")
    for i, r in enumerate(a.articles):
        label = "Report" if i == 0 else "Also"
        lines.append(f"{label}: {r.title} — {r.source}, {_when(r, zone)}")
        lines.append(f"  {r.url}")
        if i == 0 and r.summary:
            lines.append(f"  {r.summary[:400]}")
    lines += ["", f"Alert {a.id}"]
    return "\n".join(lines)


_STYLE = {
    "body": "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#222;"
    "max-width:640px;line-height:1.45",
    "h2": "font-size:20px;margin:0 0 8px",
    "topic": "display:inline-block;background:#eef3fb;color:#1d4f91;border-radius:3px;"
    "padding:1px 6px;margin:0 4px 4px 0;font-size:13px",
    "why": "border-left:3px solid #1d4f91;margin:10px 0;padding:2px 10px;color:#333",
    "lead": "color:#444;margin:4px 0 10px",
    "meta": "color:#777;font-size:13px",
}


def render_html(a: AlertContent, tz: str = "UTC") -> str:
    """HTML part: every feed-supplied string is escaped; links are the only markup from
    outside; the matched terms of the reason are in bold."""
    e = html.escape
    zone = ZoneInfo(tz)

    def link(r: ArticleRef) -> str:
        title = e(r.title)
        if r.url.lower().startswith(("http://", "https://")):  # no javascript:, data:, …
            return f'<a href="{e(r.url, quote=True)}">{title}</a>'
        return title

    parts = [f'<h2 style="{_STYLE["h2"]}">{e(a.title)}</h2>']
    if a.kind == "digest":
        rows = "".join(
            f'<li>{link(r)} <span style="{_STYLE["meta"]}">— {e(r.source)}, '
            f"{e(_when(r, zone))}</span></li>"
            for r in a.articles
        )
        parts.append(f"<ol>{rows}</ol>")
    else:
        if a.topics:
            parts.append(
                "<p>"
                + "".join(
                    f'<span style="{_STYLE["topic"]}">{e(t.title)} {t.score:.2f}</span>'
                    for t in a.topics
                )
                + "</p>"
            )
            ev = next((t.evidence[0] for t in a.topics if t.evidence), None)
            if ev:
                sentence, pairs = reason(ev)
                shown = e(sentence)
                for _, term in pairs:
                    shown = shown.replace(e(term), f"<b>{e(term)}</b>", 1)
                parts.append(f'<blockquote style="{_STYLE["why"]}">{shown}</blockquote>')
        for i, r in enumerate(a.articles):
            meta = f'<span style="{_STYLE["meta"]}">{e(r.source)}, {e(_when(r, zone))}</span>'
            if i == 0:
                parts.append(f"<p><b>{link(r)}</b><br>{meta}</p>")
                if r.summary:
                    parts.append(f'<p style="{_STYLE["lead"]}">{e(r.summary[:400])}</p>')
                if len(a.articles) > 1:
                    parts.append(f'<p style="{_STYLE["meta"]}">Also reported by:</p><ul>')
            else:
                parts.append(f"<li>{link(r)} {meta}</li>")
        if len(a.articles) > 1:
            parts.append("</ul>")
    parts.append(
        f'<p style="{_STYLE["meta"]}">{"Digest" if a.kind == "digest" else "Alert"} {e(a.id)}</p>'
    )
    return f'<html><body style="{_STYLE["body"]}">' + "".join(parts) + "</body></html>"
