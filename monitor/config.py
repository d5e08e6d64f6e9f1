"""Configuration: a TOML file, overridden by MONITOR_* environment variables, validated.

Every section and key is declared here; an unknown key or a bad value is rejected with a
message that names the key and the file, so a typo never silently disables a feature.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.errors import MonitorError
from monitor.schedule import DEFAULT_INTERVAL

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9,
               "gib": 2**30}


class ConfigError(MonitorError):
    """The configuration cannot be used; the message says which key and which file."""


def parse_duration(value: object) -> timedelta:
    """Read "2s", "10m", "24h", "7d" (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"invalid duration {value!r}: use a number and a unit, e.g. 30s, 10m, 24h")


def parse_size(value: object) -> int:
    """Read "10MB", "512KiB" or a byte count."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]
    raise ValueError(f"invalid size {value!r}: use e.g. 10MB or 512KiB")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


# Keys whose value may instead be read from a file (`password_file = "/run/secrets/smtp"`,
# `MONITOR_DATABASE__URL_FILE=...`), so secrets can stay out of the config file and the
# environment: Docker secrets and systemd credentials are files. The file wins over the
# plain key, so an environment `..._FILE` overrides a value in the config file.
SECRET_KEYS = ("password", "secret", "url", "username")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in SECRET_KEYS:
            file = data.get(f"{key}_file")
            if key not in cls.model_fields or file is None:
                continue
            path = Path(str(file)).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"{key}_file: cannot read {path}: {reason}") from None
            data = {k: v for k, v in data.items() if k != f"{key}_file"} | {key: value}
        return data


class DatabaseConfig(_Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data folder")


class AlertsConfig(_Section):
    backfill: Duration = timedelta(hours=24)
    retry_initial: Duration = timedelta(seconds=30)
    retry_max: Duration = timedelta(hours=1)
    max_attempts: int = Field(10, ge=1)
    # A feed failing this long raises one feed-health alert ("0s" turns it off).
    feed_failure_alert: Duration = timedelta(hours=6)


class HttpConfig(_Section):
    connect_timeout: Duration = timedelta(seconds=10)
    timeout: Duration = timedelta(seconds=30)
    max_body: Size = 10 * 2**20
    concurrency: int = Field(32, ge=1)
    per_host: int = Field(2, ge=1)
    user_agent: str | None = None
    allow_link_local: bool = False  # link-local / cloud metadata addresses (see README)


class ServiceConfig(_Section):
    # host:port of /healthz and /metrics while `monitor run` runs; "" turns it off.
    listen: str = "127.0.0.1:9464"
    # Entries and developments not seen for this long are deleted daily (alerts stay).
    retention: Duration = timedelta(days=90)
    # Shares a large poll is split into, one fetched by the main process, the others by
    # lanes (worker processes that also parse and match); default: one per core; 0: none,
    # all in the main process.
    processes: int | None = Field(None, ge=0)


class MatchingConfig(_Section):
    threshold: float | None = Field(None, ge=0)
    topics: Path | None = Field(None, description="a topic profile TOML; default: the built-in one")
    cluster_window: Duration = timedelta(days=3)




class FeedConfig(_Section):
    url: str
    name: str | None = None
    # None: start at DEFAULT_INTERVAL and follow the feed's publishing rate.
    interval: Duration | None = None
    enabled: bool = True

    @property
    def poll_interval(self) -> timedelta:
        return self.interval or DEFAULT_INTERVAL

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"feed url must be http(s)://…, got {v!r}")
        return v.strip()


class _ChannelBase(_Section):
    """What every channel has: a name and the filter deciding which alerts it gets."""

    name: str | None = None
    topics: list[str] | None = Field(None, description="only alerts on these topics")
    min_score: float = Field(0.0, ge=0, description="only alerts scoring at least this")

    mode: Literal["instant", "digest"] = "instant"
    digest_cron: str = Field("0 8 * * *", description="when digests go out (crontab)")
    timezone: str = "UTC"
    rate_limit: str | None = Field(None, description="e.g. 10/1h; the excess joins the digest")
    quiet_hours: str | None = Field(None, description="e.g. 22:00-07:00, in `timezone`")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use e.g. Europe/Moscow)") from None
        return v

    @field_validator("digest_cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(v)
        except ValueError as exc:
            raise ValueError(f"invalid crontab {v!r}: {exc}") from None
        return v

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        from monitor.routing import parse_rate

        if v is not None:
            parse_rate(v)
        return v

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        from monitor.routing import parse_quiet_hours

        if v is not None:
            parse_quiet_hours(v)
        return v

    def wants(self, topics: list[str], score: float) -> bool:
        if score < self.min_score:
            return False
        return self.topics is None or bool(set(self.topics) & set(topics))


class WebhookChannel(_ChannelBase):
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    timeout: Duration = timedelta(seconds=15)

    @field_validator("secret")
    @classmethod
    def _base64_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        raw = v.get_secret_value().removeprefix("whsec_")
        try:
            ok = bool(base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True))
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError("secret must be base64, as Standard Webhooks secrets are "
                             "(e.g. whsec_ followed by base64 of 24-64 random bytes)")
        return v


class EmailChannel(_ChannelBase):
    type: Literal["email"]
    host: str
    port: int | None = None
    security: Literal["ssl", "starttls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout: Duration = timedelta(seconds=30)
    ca_file: Path | None = Field(None, description="PEM bundle to trust (a private CA)")
    verify_tls: bool = True


class ConsoleChannel(_ChannelBase):
    type: Literal["console"]


class AppriseChannel(_ChannelBase):
    """Chat and push services through Apprise URLs (slack://, tgram://, discord://, …)."""

    type: Literal["apprise"]
    urls: list[SecretStr] = Field(min_length=1)  # they carry tokens: never printed


Channel = Annotated[WebhookChannel | EmailChannel | ConsoleChannel | AppriseChannel,
                    Field(discriminator="type")]


class Settings(BaseSettings):
    """The whole configuration. Environment variables win over the file."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    database: DatabaseConfig = DatabaseConfig()
    alerts: AlertsConfig = AlertsConfig()
    http: HttpConfig = HttpConfig()
    matching: MatchingConfig = MatchingConfig()
    service: ServiceConfig = ServiceConfig()
    feeds: list[FeedConfig] = []
    channels: list[Channel] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's contents arrive as init kwargs; the environment must override them.
        return (env_settings, init_settings)

    def channel_names(self) -> list[str]:
        """A stable name per channel: its own, else type and position."""
        return [c.name or f"{c.type}-{i + 1}" for i, c in enumerate(self.channels)]


def data_dir() -> Path:
    """Where the embedded database lives: $MONITOR_DATA_DIR, else the XDG data folder."""
    if env := os.environ.get("MONITOR_DATA_DIR"):
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "monitor"


def default_config_path() -> Path | None:
    """$MONITOR_CONFIG, else ./monitor.toml, else $XDG_CONFIG_HOME/monitor/monitor.toml."""
    if env := os.environ.get("MONITOR_CONFIG"):
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    for candidate in (Path("monitor.toml"), Path(xdg) / "monitor" / "monitor.toml"):
        if candidate.is_file():
            return candidate
    return None


def default_feeds() -> list[dict[str, Any]]:
    """The built-in feed list used when no configuration names any feed."""
    text = resources.files("monitor").joinpath("data/default_feeds.toml").read_text("utf-8")
    feeds: list[dict[str, Any]] = tomllib.loads(text).get("feeds", [])
    return feeds


def _describe(err: ValidationError, where: str) -> str:
    lines = [f"invalid configuration in {where}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_settings(path: Path | None = None, *, use_defaults: bool = True) -> Settings:
    """Load and validate; with no file and no feeds, fall back to the built-in feed list."""
    path = path or default_config_path()
    data: dict[str, Any] = {}
    where = "built-in defaults and MONITOR_* environment"
    if path is not None:
        where = f"{path} (or the MONITOR_* environment)"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, where)) from None
    if path is None and use_defaults and not settings.feeds:
        settings.feeds = [FeedConfig(**f) for f in default_feeds()]
    if settings.database.url is None:
        folder = data_dir()
        settings.database.url = f"sqlite:///{(folder / 'monitor.db').as_posix()}"
    return settings
