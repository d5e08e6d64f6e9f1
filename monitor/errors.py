"""Every error `monitor` expects, in one tree, so a caller can catch as narrowly or as
broadly as it needs and the CLI can turn any of them into one clear line.

    MonitorError
    ├── ConfigError         the config file or environment is wrong (config.py)
    ├── OpmlError           an OPML file cannot be read (opml.py)
    ├── AlreadyRunning      another process holds this SQLite database (db.py)
    └── FeedError           one feed could not be polled; never fatal to a poll
        └── ParseError      the document is not a feed (parse.py)

Fetching and storing do not raise for one feed: their failures come back as values
(FetchResult.error, a rolled-back transaction) and are recorded the same way. A feed's
failure is kept on its row as text (`last_error`) and as one of `KINDS`
(`error_kind`), the machine-readable part: health checks, the web page and alerts on
failing feeds read the kind, people read the text.
"""

from __future__ import annotations

from typing import Final

# error_kind values of a feed row. "worker": the process preparing it died.
# "bad-url": an address the HTTP client cannot use (stored before addresses were checked).
KINDS: Final = (
    "network",
    "timeout",
    "http",
    "gone",
    "too-large",
    "blocked",
    "bad-url",
    "parse",
    "store",
    "worker",
)


class MonitorError(Exception):
    """The root of every error `monitor` raises on purpose."""


class ConfigError(MonitorError):
    """The configuration cannot be used; the message says which key and which file."""


class FeedError(MonitorError):
    """A feed could not be polled; `kind` is one of KINDS."""

    kind: str = "network"


class ParseError(FeedError):
    """The body is not a feed (HTML, plain text, broken beyond recovery)."""

    kind = "parse"
