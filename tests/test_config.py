"""Configuration: the contract's keys, env overrides, and errors that name key and file."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.channels import EmailChannel, WebhookChannel
from monitor.config import ConfigError, Settings, load_settings, parse_duration

CONTRACT = """
[database]
url = "sqlite:///x.db"

[alerts]
backfill = "24h"
retry_initial = "2s"

[[feeds]]
url = "http://127.0.0.1:9/feeds/a.xml"
name = "A"
interval = "10m"

[[channels]]
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[channels]]
type = "email"
host = "smtp.example.org"
from = "monitor@example.org"
to = ["desk@example.org"]
password = "hunter2"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "monitor.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    "text,seconds",
    [("2s", 2), ("10m", 600), ("24h", 86400), ("1.5h", 5400), ("7d", 604800), (0, 0)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "10", "ten minutes", "5y", "-3s", 24, 1.5])
def test_bad_durations_are_rejected(bad: str | float) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def test_contract_keys_load(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, CONTRACT))
    assert s.database.url == "sqlite:///x.db"
    assert s.alerts.backfill == timedelta(hours=24)
    assert s.alerts.retry_initial == timedelta(seconds=2)
    assert s.feeds[0].interval == timedelta(minutes=10) and s.feeds[0].name == "A"
    assert isinstance(s.channels[0], WebhookChannel)
    assert isinstance(s.channels[1], EmailChannel) and s.channels[1].sender.endswith(".org")
    assert s.channel_names() == ["webhook-1", "email-2"]
    assert "hunter2" not in repr(s)  # secrets never print


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_DATABASE__URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("MONITOR_ALERTS__BACKFILL", "1h")
    s = load_settings(write(tmp_path, CONTRACT))
    assert s.database.url == "postgresql+psycopg://u@h/db"
    assert s.alerts.backfill == timedelta(hours=1)
    assert s.alerts.retry_initial == timedelta(seconds=2)  # untouched keys stay


@pytest.mark.parametrize(
    "text,key",
    [
        ("[database]\nurl = 'sqlite://'\nurll = 'x'\n", "database.urll: unknown key"),
        ("[alerts]\nbackfill = 'soon'\n", "alerts.backfill"),
        ("[[feeds]]\nurl = 'ftp://x/feed'\n", "feeds.0.url"),
        ("[[channels]]\ntype = 'pigeon'\n", "channels.0"),
        (
            "[[channels]]\ntype = 'email'\nhost = 'h'\nto = []\nfrom = 'a@b'\n",
            "channels.0.email.to",
        ),
        ("[mystery]\nx = 1\n", "mystery: unknown key"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_settings(path)
    assert key in str(exc.value)
    assert str(path) in str(exc.value)


def test_unreadable_files_get_clear_messages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[database\n"))


def test_no_config_uses_built_in_feeds_and_the_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    s = load_settings(None)
    assert len(s.feeds) >= 10
    assert all(f.url.startswith("https://") for f in s.feeds)
    assert s.database.url == f"sqlite:///{(tmp_path / 'data' / 'monitor.db').as_posix()}"
    assert s.channels == []


def test_secrets_can_be_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "smtp").write_text("s3cret-from-file\n")
    (tmp_path / "db").write_text("postgresql+psycopg://monitor:pw@db/monitor\n")
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        CONTRACT.replace('password = "hunter2"', f'password_file = "{tmp_path / "smtp"}"')
    )
    monkeypatch.setenv("MONITOR_DATABASE__URL_FILE", str(tmp_path / "db"))
    s = load_settings(cfg)
    email = s.channels[1]
    assert isinstance(email, EmailChannel) and email.password is not None
    assert email.password.get_secret_value() == "s3cret-from-file"
    assert s.database.url == "postgresql+psycopg://monitor:pw@db/monitor"


def test_unreadable_secret_files_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        CONTRACT.replace('password = "hunter2"', f'password_file = "{tmp_path / "missing"}"')
    )
    with pytest.raises(ConfigError, match=r"channels\.1.*password_file: cannot read .*missing"):
        load_settings(cfg)


def test_a_join_model_that_cannot_be_used_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(f'[matching]\njoin_model = "{tmp_path / "missing.toml"}"\n')
    with pytest.raises(ConfigError, match=r"join_model: .*cannot read .*missing\.toml"):
        load_settings(cfg)
    (tmp_path / "old.toml").write_text("bias = 1.0\n[weights]\nshared_words = 2.0\n")
    cfg.write_text(f'[matching]\njoin_model = "{tmp_path / "old.toml"}"\n')
    with pytest.raises(ConfigError, match=r"join_model: .*unknown features \['shared_words'\]"):
        load_settings(cfg)


def test_optional_parts_missing_are_named_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PostgreSQL driver and Apprise are extras: a config that needs one that is not
    installed gets one line saying which to install."""
    from monitor.db import Database
    from monitor.errors import ConfigError as Error

    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(Error, match=r"pip install 'monitor\[postgres\]'"):
        Database("postgresql+psycopg://monitor:secret@127.0.0.1:1/monitor")
    monkeypatch.setitem(sys.modules, "apprise", None)
    with pytest.raises(ValueError, match=r"pip install 'monitor\[chat\]'"):
        Settings(channels=[{"type": "apprise", "urls": ["json://127.0.0.1:1/"]}])


def test_a_config_holding_secrets_that_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "secret.toml"
    secret.write_text(
        '[database]\nurl = "postgresql+psycopg://monitor:hunter2@db/monitor"\n', encoding="utf-8"
    )
    plain = tmp_path / "plain.toml"
    plain.write_text('[alerts]\nbackfill = "1h"\n', encoding="utf-8")
    for p in (secret, plain):
        p.chmod(0o644)
    with caplog.at_level("WARNING", logger="monitor.config"):
        load_settings(secret)
        load_settings(plain)
        secret.chmod(0o600)
        load_settings(secret)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "chmod 600" in warned[0] and str(secret) in warned[0]
    assert "hunter2" not in warned[0]


def test_a_bare_number_for_a_duration_says_it_needs_a_unit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs a unit, e\.g\. 24s or 24h"):
        load_settings(write(tmp_path, "[alerts]\nbackfill = 24\n"))


def test_the_example_config_names_every_key_and_loads() -> None:
    """The README says monitor.example.toml shows every key: every settings field and
    every channel field appears in it, and the file itself loads."""
    from monitor.channels import AppriseChannel, EmailChannel, WebhookChannel
    from monitor.channels.base import ChannelBase

    example = Path(__file__).resolve().parent.parent / "monitor.example.toml"
    text = example.read_text(encoding="utf-8")
    missing = []
    for section in ("database", "alerts", "http", "matching", "service"):
        model = Settings.model_fields[section].annotation
        assert model is not None
        missing += [f"[{section}] {k}" for k in model.model_fields if f"{k} =" not in text]
    for cls in (ChannelBase, WebhookChannel, EmailChannel, AppriseChannel):
        for key, f in cls.model_fields.items():
            if f"{f.alias or key} =" not in text:
                missing.append(f"{cls.__name__} {f.alias or key}")
    assert missing == []
    load_settings(example)
