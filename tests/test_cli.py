"""The command line as outside tools use it: real processes, exit codes, messages."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FeedServer, WebhookSink, rss

MONITOR = [sys.executable, "-m", "monitor"]


def run(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MONITOR, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def config(tmp_path: Path, feeds: list[str], hook: str | None = None, extra: str = "") -> Path:
    lines = ["[database]", f'url = "sqlite:///{(tmp_path / "m.db").as_posix()}"', extra]
    if "[web]" not in extra:  # no desk unless asked for: tests run side by side
        lines += ["[web]", 'listen = ""']
    for u in feeds:
        lines += ["[[feeds]]", f'url = "{u}"', 'interval = "1s"']
    if hook:
        lines += ["[[channels]]", 'type = "webhook"', f'url = "{hook}"']
    p = tmp_path / "monitor.toml"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


STORY = [
    {
        "title": "Putin hosts Israel's prime minister for talks on Syria",
        "link": "https://a.example/1",
        "description": "Talks lasted three hours.",
    },
    {
        "title": "Israel's prime minister and Putin talk Syria for three hours in Sochi",
        "link": "https://a.example/2",
        "description": "The talks lasted three hours.",
    },
]


def start_service(cfg: Path, cwd: Path, **popen: Any) -> tuple[subprocess.Popen[str], Path]:
    """`monitor run` in the background, its log in cwd/run.log."""
    log_path = cwd / "run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [*MONITOR, "--config", str(cfg), "run"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            **popen,
        )
    return proc, log_path


def test_poll_alerts_and_exits_zero_even_with_a_broken_feed(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    good = feed_server.serve("/a.xml", rss(STORY))
    cfg = config(tmp_path, [feed_server.url("/nope.xml"), good], webhook_sink.url)
    r = run(["--config", str(cfg), "poll"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "/nope.xml" in r.stderr and "404" in r.stderr  # the broken feed is named
    assert len(webhook_sink.accepted) == 1
    r = run(["--config", str(cfg), "alerts", "list"], tmp_path)
    assert "Putin hosts Israel" in r.stdout and "delivered" in r.stdout
    r = run(["--config", str(cfg), "feeds", "list"], tmp_path)
    assert "ERROR x1" in r.stdout and "HTTP 404" in r.stdout
    r = run(["--config", str(cfg), "status"], tmp_path)
    assert r.returncode == 0 and "reachable" in r.stdout
    r = run(["--config", str(cfg), "explain", "https://a.example/1?utm_source=x"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "MATCHED" in r.stdout and "russia:Putin" in r.stdout
    assert "joined as: new" in r.stdout and "alert msg_" in r.stdout
    # the other report of the same talks: what the two share, against the bar
    assert "most alike clustered reports" in r.stdout and "[same development]" in r.stdout
    assert "shares entities:" in r.stdout and "putin" in r.stdout
    r = run(["--config", str(cfg), "explain", "https://a.example/unknown"], tmp_path)
    assert r.returncode != 0 and "no stored entry" in r.stderr


def test_bad_config_fails_with_a_message_naming_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[alerts]\nbackfil = "24h"\n', encoding="utf-8")
    r = run(["--config", str(cfg), "poll"], tmp_path)
    assert r.returncode != 0
    assert "alerts.backfil: unknown key" in r.stderr and str(cfg) in r.stderr
    assert "Traceback" not in r.stderr


def test_feeds_add_and_remove(tmp_path: Path) -> None:
    cfg = config(tmp_path, [])
    r = run(
        ["--config", str(cfg), "feeds", "add", "https://x.example/rss", "--name", "X"], tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "https://x.example/rss" in run(["--config", str(cfg), "feeds", "list"], tmp_path).stdout
    assert (
        run(["--config", str(cfg), "feeds", "add", "https://y.example/rss"], tmp_path).returncode
        == 0
    )
    assert (
        run(["--config", str(cfg), "feeds", "remove", "https://x.example/rss"], tmp_path).returncode
        == 0
    )
    missing = run(["--config", str(cfg), "feeds", "remove", "99"], tmp_path)
    assert missing.returncode != 0 and "no such feed: 99" in missing.stderr
    assert run(["--config", str(cfg), "feeds", "remove", "2"], tmp_path).returncode == 0  # by id
    assert "no feeds" in run(["--config", str(cfg), "feeds", "list"], tmp_path).stdout


def test_topics_show_prints_the_profile(tmp_path: Path) -> None:
    r = run(["--config", str(config(tmp_path, [])), "topics", "show"], tmp_path)
    assert r.returncode == 0
    assert "[russia-israel]" in r.stdout and "[iran-nuclear]" in r.stdout


def test_run_polls_until_sigterm_then_exits_zero(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    import json
    import re
    import urllib.request

    url = feed_server.serve("/a.xml", rss(STORY))
    cfg = config(
        tmp_path,
        [url, "http://127.0.0.1:9/unreachable.xml"],
        webhook_sink.url,
        extra='[service]\nlisten = "127.0.0.1:0"',
    )
    proc, log_path = start_service(cfg, tmp_path)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            len(webhook_sink.accepted) < 1 or len(feed_server.requests) < 3
        ):
            time.sleep(0.2)
        assert len(webhook_sink.accepted) == 1
        assert len(feed_server.requests) >= 3  # polled again on its 1s interval
        port = re.search(r"127\.0\.0\.1:(\d+)/healthz", log_path.read_text())
        assert port, log_path.read_text()
        base = f"http://127.0.0.1:{port.group(1)}"
        health = json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())
        assert health["ok"] and health["database"] == "ok" and health["scheduler"] == "ok"
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'monitor_alerts_total{kind="development"} 1.0' in text
        assert 'monitor_feed_polls_total{outcome="error"}' in text
        second = run(["--config", str(cfg), "run"], tmp_path)  # SQLite: one service only
        assert second.returncode != 0 and "one process at a time" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    err = log_path.read_text()
    assert proc.returncode == 0, err
    assert "unreachable.xml" in err and "cannot connect" in err
    assert len(webhook_sink.accepted) == 1


def test_channels_test_reports_success_and_failure(
    tmp_path: Path, webhook_sink: WebhookSink
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'''[database]
url = "sqlite:///{(tmp_path / "m.db").as_posix()}"
[[channels]]
type = "webhook"
name = "good"
url = "{webhook_sink.url}"
[[channels]]
type = "webhook"
name = "down"
url = "http://127.0.0.1:9/hook"
''',
        encoding="utf-8",
    )
    r = run(["--config", str(cfg), "channels", "test", "good"], tmp_path)
    assert r.returncode == 0 and "good: delivered" in r.stdout
    assert webhook_sink.accepted[0]["body"]["type"] == "test.new"
    r = run(["--config", str(cfg), "channels", "test", "down"], tmp_path)
    assert r.returncode != 0 and "temporary" in r.stderr
    r = run(["--config", str(cfg), "channels", "list"], tmp_path)
    assert "good" in r.stdout and "down" in r.stdout


def test_dead_letter_is_listed_and_retried_by_hand(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.serve("/a.xml", rss(STORY))
    cfg = config(tmp_path, [url], webhook_sink.url)
    webhook_sink.responses = [(400, {})]  # refused for good on the first attempt
    assert run(["--config", str(cfg), "poll"], tmp_path).returncode == 0
    r = run(["--config", str(cfg), "alerts", "list", "--failed"], tmp_path)
    assert "dead after 1 attempt" in r.stdout and "HTTP 400" in r.stdout
    alert_id = r.stdout.split()[2]
    r = run(["--config", str(cfg), "alerts", "retry", alert_id], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "delivered 1" in r.stdout
    assert [x["headers"]["webhook-id"] for x in webhook_sink.received] == [alert_id] * 2
    assert "no alerts" in run(["--config", str(cfg), "alerts", "list", "--failed"], tmp_path).stdout


def test_a_delivering_process_killed_mid_send_loses_nothing(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """SIGKILL while the receiver holds its reply; the next run re-sends with the same id."""
    import http.server
    import threading

    received: list[str] = []
    first_arrived = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(self.headers["webhook-id"])
            if len(received) == 1:
                first_arrived.set()
                time.sleep(30)  # the sender is killed while waiting for this reply
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    url = feed_server.serve("/a.xml", rss(STORY))
    cfg = config(tmp_path, [url], hook)
    proc = subprocess.Popen(
        [*MONITOR, "--config", str(cfg), "poll"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert first_arrived.wait(60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    r = run(["--config", str(cfg), "deliver"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(received) == 2 and received[0] == received[1]
    r = run(["--config", str(cfg), "alerts", "list"], tmp_path)
    assert "delivered after 1 attempt" in r.stdout
    httpd.shutdown()


def test_feeds_import_and_export_opml(tmp_path: Path) -> None:
    from tests.test_opml import SAMPLE

    cfg = config(tmp_path, ["https://meduza.io/rss/all"])
    opml = tmp_path / "desk.opml"
    opml.write_text(SAMPLE, encoding="utf-8")
    r = run(["--config", str(cfg), "feeds", "import", str(opml)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 feeds, 2 added, 1 skipped" in r.stdout  # Meduza is already in the config
    out = run(["--config", str(cfg), "feeds", "export"], tmp_path).stdout
    assert out.count("<outline") == 3 and 'xmlUrl="https://meduza.io/rss/all"' in out
    bad = tmp_path / "bad.opml"
    bad.write_text("<html/>", encoding="utf-8")
    r = run(["--config", str(cfg), "feeds", "import", str(bad)], tmp_path)
    assert r.returncode != 0 and "not OPML" in r.stderr


def test_secrets_never_reach_logs_or_status(tmp_path: Path, feed_server: FeedServer) -> None:
    url = feed_server.serve("/a.xml", rss(STORY))
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'''[database]
url = "sqlite:///{(tmp_path / "m.db").as_posix()}"
[[feeds]]
url = "{url}"
[[channels]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "whsec_c2VjcmV0LXdlYmhvb2sta2V5LXZhbHVlLTEyMzQ="
[[channels]]
type = "email"
host = "127.0.0.1"
port = 9
security = "none"
username = "desk"
password = "hunter2-smtp-password"
from = "m@example.org"
to = ["d@example.org"]
''',
        encoding="utf-8",
    )
    outputs = [
        run(["--config", str(cfg), "--log-level", "debug", "poll"], tmp_path),
        run(["--config", str(cfg), "status"], tmp_path),
        run(["--config", str(cfg), "channels", "list"], tmp_path),
        run(["--config", str(cfg), "alerts", "list"], tmp_path),
    ]
    text = "".join(r.stdout + r.stderr for r in outputs)
    assert "delivery" in text.lower()  # the failures were reported…
    for secret in ("hunter2-smtp-password", "c2VjcmV0LXdlYmhvb2sta2V5LXZhbHVlLTEyMzQ"):
        assert secret not in text  # …without the secrets
    pg = run(["--config", str(cfg), "status"], tmp_path, timeout=60)
    assert pg.returncode == 0


def test_database_password_is_hidden_in_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        '[database]\nurl = "postgresql+psycopg://u:s3cr3t-db-pw@127.0.0.1:9/x"\n', encoding="utf-8"
    )
    r = run(["--config", str(cfg), "status"], tmp_path)
    assert r.returncode != 0 and "s3cr3t-db-pw" not in r.stdout + r.stderr
    r = run(["--config", str(cfg), "poll"], tmp_path)
    assert r.returncode != 0 and "s3cr3t-db-pw" not in r.stdout + r.stderr
    assert "not usable" in r.stderr


def test_service_finishes_the_tick_in_flight_when_the_whole_group_is_signalled(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    """systemd sends SIGTERM to every process of the unit, the parser pool's included
    (the first tick started it). A tick in flight (slow feeds make sure there is one)
    must finish, not be cancelled, and the service close the pool and exit 0 with
    everything stored. (Workers ignoring SIGTERM mid-document: test_pool.py.)"""
    feeds = [
        feed_server.serve(
            f"/{n}.xml",
            rss(
                [
                    {
                        "title": f"Council approves budget item {n}",
                        "link": f"https://n{n}.example/1",
                        "description": "The vote was close.",
                    }
                ]
            ),
        )
        for n in range(19)
    ]
    feeds.append(feed_server.serve("/story.xml", rss(STORY)))
    cfg = config(tmp_path, feeds, webhook_sink.url, extra='[service]\nlisten = ""\nprocesses = 2')
    proc, log_path = start_service(cfg, tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(webhook_sink.accepted) < 1:
            time.sleep(0.1)
        assert len(webhook_sink.accepted) == 1, log_path.read_text()
        for route in feed_server.routes.values():
            route.delay = 0.3  # from now on every tick takes seconds
        seen = len(feed_server.requests)
        while time.monotonic() < deadline and len(feed_server.requests) < seen + 3:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    err = log_path.read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "processing failed" not in err, err
    after_stop = err.split("stopping: finishing in-flight work", 1)[1]
    assert "polled" in after_stop, err  # the tick in flight finished and reported
    with sqlite3.connect(tmp_path / "m.db") as db:
        (stored,) = db.execute("SELECT count(*) FROM entries").fetchone()
    assert stored == 19 + len(STORY)


def test_a_second_process_on_one_sqlite_database_waits_then_refuses(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    """Two processes on one SQLite database took over each other's live leases and sent
    alerts twice: `poll` and `deliver` wait for the other (`[service] lock_wait`), then
    refuse in one line; with the lock free they run."""
    import fcntl

    good = feed_server.serve("/a.xml", rss(STORY))
    cfg = config(tmp_path, [good], webhook_sink.url, extra='[service]\nlock_wait = "1s"')
    assert run(["--config", str(cfg), "db", "upgrade"], tmp_path).returncode == 0
    with open(tmp_path / "m.db.run.lock", "a+") as held:  # another process's lock
        held.write("pid 4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        for command in ("poll", "deliver"):
            r = run(["--config", str(cfg), command], tmp_path)
            assert r.returncode == 1 and "Traceback" not in r.stderr
            assert "pid 4242" in r.stderr and "one process at a time" in r.stderr
        fcntl.flock(held, fcntl.LOCK_UN)
    assert webhook_sink.accepted == []
    r = run(["--config", str(cfg), "poll"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(webhook_sink.accepted) == 1


def test_log_lines_escape_what_feeds_and_servers_send() -> None:
    """A title or an error text with a line break or a terminal escape cannot forge a log
    line or recolour the terminal: control characters are written as escapes."""
    import logging

    from monitor.cli.app import TextFormatter

    record = logging.LogRecord(
        "monitor", logging.INFO, __file__, 1, "alert: %s", ("A\nERROR fake line \x1b[31m",), None
    )
    line = TextFormatter("%(levelname)s %(message)s").format(record)
    assert line == "INFO alert: A\\nERROR fake line \\x1b[31m" and "\n" not in line


def test_a_poll_with_no_feeds_says_so(tmp_path: Path) -> None:
    cfg = config(tmp_path, [])
    r = run(["--config", str(cfg), "poll"], tmp_path)
    assert r.returncode == 0 and "no enabled feeds to poll" in r.stderr


def test_bad_environment_and_database_urls_get_one_line_not_a_traceback(tmp_path: Path) -> None:
    def status(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MONITOR, "channels", "list"] if "MONITOR_CHANNELS" in env else [*MONITOR, "status"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "MONITOR_CONFIG": str(config(tmp_path, [])), **env},
        )

    for env, says in [
        (
            {"MONITOR_CHANNELS": '[{"type": "webhook", url: x}]'},
            "MONITOR_CHANNELS is not valid JSON",
        ),
        ({"MONITOR_DATABASE__URL": "postgresq://u:pw@h/db"}, "unknown database kind 'postgresq'"),
        ({"MONITOR_DATABASE__URL": str(tmp_path / "m.db")}, "is not a database URL"),
    ]:
        r = status(**env)
        assert r.returncode != 0 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert "pw@" not in r.stderr
    # a JSON value still in the quotes of the shell line it came from (docker --env-file)
    quoted = '\'[{"type": "webhook", "name": "ops", "url": "https://h.example/x"}]\''
    r = status(MONITOR_CHANNELS=quoted)
    assert r.returncode == 0 and "ops" in r.stdout, r.stderr


def test_a_database_that_is_down_is_one_log_line_per_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from sqlalchemy.exc import OperationalError

    from monitor.poller import log_failure

    with caplog.at_level(logging.ERROR, logger="monitor.poller"):
        try:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
        except OperationalError:
            log_failure("tick failed")
        try:
            raise KeyError("a bug")
        except KeyError:
            log_failure("tick failed")
    down, bug = caplog.records
    assert down.exc_info is None and "database unavailable" in down.getMessage()
    assert "connection refused" in down.getMessage()
    assert bug.exc_info is not None  # a bug keeps its traceback


def test_config_after_the_command_and_feeds_add_says_what_it_found(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    cfg = config(tmp_path, [])
    good = feed_server.serve("/a.xml", rss(STORY, title="Desk feed"))
    r = run(["feeds", "add", good, "--config", str(cfg)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "found 'Desk feed' (rss20): 2 entries" in r.stdout
    r = run(["feeds", "add", "not a url", "--config", str(cfg)], tmp_path)
    assert r.returncode == 2 and "feed url must be http(s)" in r.stderr
    assert "validation error" not in r.stderr and "Traceback" not in r.stderr
    r = run(["status", "--config", str(cfg)], tmp_path)
    assert r.returncode == 0 and "feeds      1" in r.stdout, r.stderr


def test_opml_import_names_what_it_skipped(tmp_path: Path) -> None:
    opml = tmp_path / "list.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body>'
        '<outline text="Good" type="rss" xmlUrl="https://good.example/feed.xml"/>'
        '<outline text="Bad port" type="rss" xmlUrl="http://bad.example:port/feed"/>'
        '<outline text="Mail" type="rss" xmlUrl="mailto:desk@example.org"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    cfg = config(tmp_path, [])
    r = run(["--config", str(cfg), "feeds", "import", str(opml)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "3 feeds, 1 added, 2 skipped" in r.stdout
    assert "bad.example:port" in r.stderr and "mailto:desk@example.org" in r.stderr
