"""What a poll did, counted: the CLI and the service log it, tests read it."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass
class PollStats:
    feeds: int = 0
    fetched: int = 0
    not_modified: int = 0
    unchanged: int = 0
    errors: int = 0
    new_entries: int = 0
    updated_entries: int = 0
    developments: int = 0
    alerts: int = 0
    failed_feeds: list[str] = field(default_factory=list)

    def add(self, other: PollStats) -> None:
        for f in fields(self):
            if f.name != "failed_feeds":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.failed_feeds += other.failed_feeds

    def failed(self, url: str) -> None:
        self.errors += 1
        self.failed_feeds.append(url)
