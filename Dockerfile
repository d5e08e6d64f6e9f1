# monitor: news feed monitor with email/webhook alerts.
#
#   docker build -t monitor .
#   docker run -d --name monitor -v monitor-data:/data monitor            # SQLite in /data
#   docker run --rm -v monitor-data:/data monitor status
#
# Configuration: /etc/monitor/monitor.toml (a copy of monitor.example.toml; mount your own
# over it or set MONITOR_CONFIG) plus MONITOR_* environment variables, which take precedence.

FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MONITOR_DATA_DIR=/data \
    MONITOR_CONFIG=/etc/monitor/monitor.toml

# Unprivileged account with a fixed id, so volume ownership is predictable.
RUN groupadd --system --gid 10001 monitor \
 && useradd --system --uid 10001 --gid monitor --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin monitor

WORKDIR /app

# Build inputs only (see .dockerignore). migrations/ is packaged as monitor.migrations.
COPY pyproject.toml README.md alembic.ini ./
COPY monitor/ ./monitor/
COPY migrations/ ./migrations/
RUN pip install --no-cache-dir '.[postgres,chat]' \
 && monitor --version

COPY monitor.example.toml /etc/monitor/monitor.toml

# Create the data folder owned by the service user before declaring it a volume, so a new
# named volume starts out writable by that user.
RUN mkdir -p /data && chown monitor:monitor /data

USER monitor:monitor
VOLUME /data

ENTRYPOINT ["monitor"]
CMD ["run"]
