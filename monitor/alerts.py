"""What an alert says: the versioned JSON payload and its text and HTML renderings. Pure."""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


def subject(a: AlertContent) -> str:
    topics = ", ".join(t.title for t in a.topics[:2])
    head = f"[monitor] {a.title}"
    return f"{head} — {topics}" if topics else head


def render_text(a: AlertContent) -> str:
    lines = [a.title, ""]
    if a.topics:
        lines.append("Topics: " + ", ".join(f"{t.title} ({t.score:.2f})" for t in a.topics))
        ev = next((t.evidence[0] for t in a.topics if t.evidence), None)
        if ev:
            lines.append(f"Why: {ev}")
        lines.append("")
    for i, r in enumerate(a.articles):
        label = "Primary" if i == 0 else "Also"
        lines.append(f"{label}: {r.title} — {r.source}, {r.published:%Y-%m-%d %H:%M} UTC")
        lines.append(f"  {r.url}")
    lines += ["", f"Alert {a.id}"]
    return "\n".join(lines)


def render_html(a: AlertContent) -> str:
    """HTML part: every feed-supplied string is escaped; links are the only markup."""
    e = html.escape
    parts = [f"<h2>{e(a.title)}</h2>"]
    if a.topics:
        items = "".join(f"<li>{e(t.title)} ({t.score:.2f})</li>" for t in a.topics)
        parts.append(f"<p>Topics:</p><ul>{items}</ul>")
        ev = next((t.evidence[0] for t in a.topics if t.evidence), None)
        if ev:
            parts.append(f"<blockquote>{e(ev)}</blockquote>")
    rows = []
    for r in a.articles:
        title = e(r.title)
        if r.url.lower().startswith(("http://", "https://")):  # no javascript:, data:, …
            title = f'<a href="{e(r.url, quote=True)}">{title}</a>'
        rows.append(f"<li>{title} — {e(r.source)}, {r.published:%Y-%m-%d %H:%M} UTC</li>")
    parts.append(f"<ol>{''.join(rows)}</ol>")
    parts.append(f'<p style="color:#777">Alert {e(a.id)}</p>')
    return "<html><body>" + "".join(parts) + "</body></html>"
