# pgcat-py container image. Build: docker build -t pgcat-py:0.1.0 .
# Runs `pgcat-py /etc/pgcat/pgcat.toml` as uid 10001; mount the config there (k8s/ mounts a
# Secret). Nothing is written at run time, so a read-only root filesystem works.
# Build stage: the pgcat-py wheel, from the sources only (dependencies come from the lock).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements-build.lock ./
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r requirements-build.lock
COPY pyproject.toml README.md ./
COPY pgcat_py/ pgcat_py/
COPY parser/ parser/
COPY sharding/ sharding/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# Run stage: the locked dependencies, then the wheel, in a virtualenv owned by root.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/pgcat-py/bin:$PATH
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/pgcat-py \
 && /opt/pgcat-py/bin/pip install --require-hashes --only-binary=:all: -r /tmp/requirements.lock \
 && rm /tmp/requirements.lock
COPY --from=build /wheels/ /tmp/wheels/
RUN /opt/pgcat-py/bin/pip install --no-deps /tmp/wheels/*.whl \
 && rm -r /tmp/wheels \
 && groupadd --system --gid 10001 pgcat \
 && useradd --system --uid 10001 --gid pgcat --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pgcat \
 && mkdir -p /etc/pgcat
COPY pgcat.toml.example /etc/pgcat/pgcat.toml.example
WORKDIR /etc/pgcat
USER 10001:10001
# 6432: clients; 9930: /metrics and /healthz (enable_prometheus_exporter = true)
EXPOSE 6432 9930
# SIGINT is pgcat-py's graceful shutdown (transactions finish within shutdown_timeout);
# SIGTERM, Docker's default, would end every client at once.
STOPSIGNAL SIGINT
# /healthz answers 200 while the listener serves, 503 once a shutdown began; it needs
# enable_prometheus_exporter = true. Python, since the image has no curl;
# PGCAT_HEALTHZ_URL overrides the address for another prometheus_exporter_port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('PGCAT_HEALTHZ_URL', 'http://127.0.0.1:9930/healthz'), timeout=2)"]
ENTRYPOINT ["pgcat-py"]
CMD ["/etc/pgcat/pgcat.toml"]
