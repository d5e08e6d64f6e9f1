"""The `monitor` command line: one module per command group, each a thin layer over the
library (reads and writes go through monitor.store; polling through monitor.pipeline).
app.py holds the group, its options and the shared Context."""

from __future__ import annotations

from monitor.cli import alerts, channels, explain, feeds, running, topics
from monitor.cli.app import accept_config_everywhere, cli, main

accept_config_everywhere(cli)

__all__ = ["alerts", "channels", "cli", "explain", "feeds", "main", "running", "topics"]
