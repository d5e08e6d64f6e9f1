"""Configuration: a TOML file, overridden by MONITOR_* environment variables, validated.

Every section and key is declared here; an unknown key or a bad value is rejected with a
message that names the key and the file, so a typo never silently disables a feature.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from monitor.channels import Channel
from monitor.errors import ConfigError as ConfigError  # raised here; re-exported
from monitor.schedule import DEFAULT_INTERVAL
from monitor.values import Duration, Section, Size
from monitor.values import parse_duration as parse_duration  # re-exported
from monitor.values import parse_size as parse_size  # re-exported


class DatabaseConfig(Section):
    url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data folder")


class AlertsConfig(Section):
    backfill: Duration = timedelta(hours=24)
    retry_initial: Duration = timedelta(seconds=30)
    retry_max: Duration = timedelta(hours=1)
    max_attempts: int = Field(10, ge=1)
    # A feed failing this long raises one feed-health alert ("0s" turns it off).
    feed_failure_alert: Duration = timedelta(hours=6)


class HttpConfig(Section):
    connect_timeout: Duration = timedelta(seconds=10)
    timeout: Duration = timedelta(seconds=30)
    max_body: Size = 10 * 2**20
    concurrency: int = Field(32, ge=1)
    per_host: int = Field(2, ge=1)
    user_agent: str | None = None
    allow_link_local: bool = False  # link-local / cloud metadata addresses (see README)


class ServiceConfig(Section):
    # host:port of /healthz and /metrics while `monitor run` runs; "" turns it off.
    listen: str = "127.0.0.1:9464"
    # Entries and developments not seen for this long are deleted daily (alerts stay).
    retention: Duration = timedelta(days=90)
    # Worker processes that parse and match fetched documents (the parser pool, started
    # once); default: one per core, and for `monitor run` only while a poll needs them
    # (pool.ParserPool.on_demand); 0: none, all in the main process.
    processes: int | None = Field(None, ge=0)
    # The longest a worker may spend on one document: past it the worker is replaced and
    # the feed fails until it serves another document.
    document_timeout: Duration = timedelta(seconds=30)
    # On SQLite one process uses the database at a time: how long `poll` and `deliver`
    # wait for another to finish before giving up with a message.
    lock_wait: Duration = timedelta(minutes=2)


class WebUser(Section):
    """One reader who signs in to the desk: a name, an argon2 hash of the password (from
    `monitor web hash-password`, never the password itself), and a role: a viewer reads,
    an editor also gives feedback and retries dead letters."""

    name: str = Field(min_length=1, max_length=100)
    password: str
    role: Literal["viewer", "editor"] = "viewer"

    @field_validator("password")
    @classmethod
    def _a_hash(cls, v: str) -> str:
        if not v.startswith("$argon2"):
            raise ValueError(
                "must be the password's hash, not the password: run `monitor web "
                "hash-password` and paste what it prints"
            )
        return v


class WebToken(Section):
    """A token for the JSON API and the Atom feed (`Authorization: Bearer …`, or
    `?token=` for a feed reader): its SHA-256, as `monitor web new-token` prints it."""

    name: str = Field(min_length=1, max_length=100)
    token_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    role: Literal["viewer", "editor"] = "viewer"


class WebConfig(Section):
    # host:port of the web desk while `monitor run` (or `monitor web`) runs; "" turns it
    # off. Bound to this machine by default, where no login is asked; any other address
    # needs [[web.users]] or [[web.tokens]], and then every request signs in.
    listen: str = "127.0.0.1:8080"
    # Developments per page.
    page_size: int = Field(50, ge=1, le=500)
    users: list[WebUser] = Field(default_factory=list)
    tokens: list[WebToken] = Field(default_factory=list)
    # How long a sign-in lasts.
    session_lifetime: Duration = timedelta(hours=12)

    @field_validator("listen")
    @classmethod
    def _an_address(cls, v: str) -> str:
        if v:
            web_address(v)
        return v

    @model_validator(mode="after")
    def _login_beyond_this_machine(self) -> WebConfig:
        if self.listen and not is_local(self.listen) and not self.login_required:
            raise ValueError(
                f"listen = {self.listen!r} serves the desk beyond this machine, which needs "
                "a login: add [[web.users]] (name, password from `monitor web "
                'hash-password`, role) or [[web.tokens]], or use 127.0.0.1:PORT, or "" to '
                "turn it off"
            )
        names = [u.name for u in self.users] + [t.name for t in self.tokens]
        if len(names) != len(set(names)):
            raise ValueError("[[web.users]] and [[web.tokens]] need distinct names")
        return self

    @property
    def login_required(self) -> bool:
        """Whether requests must sign in: whenever a user or a token is configured."""
        return bool(self.users or self.tokens)


def web_address(listen: str) -> tuple[str, int]:
    """`[web] listen` as (host, port); ValueError for one that is not host:port."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"must be host:port, got {listen!r}")
    return host, int(port)


def is_local(listen: str) -> bool:
    """Whether `[web] listen` is this machine's alone (loopback)."""
    import ipaddress

    host, _ = web_address(listen)
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebSubConfig(Section):
    # The public address of the desk's WebSub endpoint, as hubs reach it (through a
    # reverse proxy, say: https://monitor.example.org/websub); "" turns WebSub off.
    callback: str = ""
    # The subscription length asked of hubs (they may grant another).
    lease: Duration = timedelta(days=7)
    # While a feed is pushed, it is still polled, at this interval at the most.
    poll_interval: Duration = timedelta(hours=1)

    @field_validator("callback")
    @classmethod
    def _an_address(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not v.lower().startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) address, got {v!r}")
        return v


class MatchingConfig(Section):
    threshold: float | None = Field(None, ge=0)
    topics: Path | None = Field(None, description="a topic profile TOML; default: the built-in one")
    cluster_window: Duration = timedelta(days=5)
    # The probability at which a report joins its most probable development.
    join_probability: float = Field(0.5, gt=0, lt=1)
    join_model: Path | None = Field(
        None, description="a join model TOML (bench/train_cluster.py); default: the built-in one"
    )

    @field_validator("join_model")
    @classmethod
    def _join_model_loads(cls, v: Path | None) -> Path | None:
        """A model that cannot be read is said at start-up, not at the first poll."""
        if v is not None:
            from monitor.cluster import load_join_model

            try:
                load_join_model(v)
            except OSError as exc:
                raise ValueError(f"cannot read {v}: {exc.strerror}") from None
            except ValueError as exc:  # not TOML, or features this version lacks
                raise ValueError(str(exc)) from None
        return v


class FeedConfig(Section):
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
        from monitor.fetch import feed_url

        return feed_url(v)


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
    web: WebConfig = WebConfig()
    websub: WebSubConfig = WebSubConfig()
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
        return (_QuotedEnv(settings_cls), init_settings)

    @model_validator(mode="after")
    def _websub_needs_the_desk(self) -> Settings:
        if self.websub.callback and not self.web.listen:
            raise ValueError(
                '[websub] callback is set but [web] listen is "": hubs push to the desk, '
                "so serve it (behind the address the callback names)"
            )
        return self

    def channel_names(self) -> list[str]:
        """A stable name per channel: its own, else type and position."""
        return [c.name or f"{c.type}-{i + 1}" for i, c in enumerate(self.channels)]


class _QuotedEnv(EnvSettingsSource):
    """The environment, where a JSON value may arrive in the quotes of the shell line it
    was copied from (`docker run --env-file` keeps them): one pair is taken off."""

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        if isinstance(value, str):
            v = value.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                value = v[1:-1]
        try:
            return super().decode_complex_value(field_name, field, value)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"MONITOR_{field_name.upper()} is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}): give a JSON list, as in .env.example"
            ) from None


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
    if path is not None:
        _warn_if_exposed(path, data)
    if settings.database.url is None:
        folder = data_dir()
        settings.database.url = f"sqlite:///{(folder / 'monitor.db').as_posix()}"
    return settings


def _holds_secret(data: Any) -> bool:
    """Whether a config's data holds a secret: a password, a signing secret, a database
    URL with a password in it, or Apprise URLs (they carry tokens)."""
    if isinstance(data, list):
        return any(_holds_secret(v) for v in data)
    if not isinstance(data, dict):
        return False
    for key, value in data.items():
        if key in ("password", "secret", "urls") and value:
            return True
        if key == "url" and isinstance(value, str) and re.match(r"^[\w+]+://[^/@]*:[^/@]+@", value):
            return True
        if _holds_secret(value):
            return True
    return False


def _warn_if_exposed(path: Path, data: dict[str, Any]) -> None:
    """A config file holding secrets that other users may read gets one warning."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o044 and _holds_secret(data):
        logging.getLogger("monitor.config").warning(
            "%s holds secrets and other users can read it (mode %s): chmod 600 %s, or move "
            "the secrets to files (password_file = ...) or MONITOR_* variables",
            path,
            oct(mode & 0o777),
            path,
        )
