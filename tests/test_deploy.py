"""The deployment files (Dockerfile, compose.yaml, deploy/sentiment-bot.service), checked without
building or running them: no container engine or registry is reachable in this workplace.

What would break a deployment silently: the image's torch drifting from the pin
scripts/bootstrap.sh installs (or an unpinned, CUDA torch), a root container, a health check
that asks the wrong thing, shard ranges that miss or repeat a shard, a bot pointed at a
database that is not the compose file's, a setting the bot does not read, a .env (the token)
copied into the image, a systemd directive systemd does not know.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.config import Settings

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
UNIT = REPO / "deploy" / "sentiment-bot.service"
BOOTSTRAP = REPO / "scripts" / "bootstrap.sh"


def instructions(path: Path) -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def bootstrap_torch_spec(env: dict[str, str] | None = None) -> str:
    """What scripts/bootstrap.sh installs as torch: its TORCH_SPEC line, evaluated by bash."""
    (line,) = [s for s in BOOTSTRAP.read_text().splitlines() if s.startswith("TORCH_SPEC=")]
    result = subprocess.run(
        ["bash", "-c", f'{line}\nprintf %s "$TORCH_SPEC"'],
        capture_output=True,
        text=True,
        check=True,
        env=env or {},
    )
    return result.stdout


# --------------------------------------------------------------------------------------------
# Dockerfile


def test_the_image_installs_the_torch_that_bootstrap_pins() -> None:
    spec = bootstrap_torch_spec()
    assert re.fullmatch(r"torch==\d+\.\d+\.\d+", spec), spec  # an exact pin, nothing looser
    text = DOCKERFILE.read_text()
    assert "torch==" not in text  # no copy of the pin that could drift
    runs = [rest for keyword, rest in instructions(DOCKERFILE) if keyword == "RUN"]
    (torch_run,) = [r for r in runs if "TORCH_SPEC" in r]
    # The same line of bootstrap.sh, evaluated the same way, then installed from the CPU index.
    assert "eval \"$(grep '^TORCH_SPEC=' scripts/bootstrap.sh)\"" in torch_run
    assert 'pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"' in torch_run
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    # torch comes before the project, whose dependencies would otherwise pull a CUDA build
    project = next(i for i, r in enumerate(runs) if r.startswith("pip install ."))
    assert runs.index(torch_run) < project
    # what the image's shell does with the override, bootstrap.sh does too
    assert bootstrap_torch_spec({"SENTIMENT_TORCH_SPEC": "torch==9.9.9"}) == "torch==9.9.9"


def test_the_image_runs_as_a_user_without_privileges() -> None:
    users = [rest for keyword, rest in instructions(DOCKERFILE) if keyword == "USER"]
    assert users, "no USER: the bot would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    steps = instructions(DOCKERFILE)
    last_user = max(i for i, (keyword, _) in enumerate(steps) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in steps[last_user:])  # nothing runs after as root
    assert ("CMD", '["sentiment", "bot"]') in steps


def test_the_image_bakes_the_model_in_and_checks_its_health_over_http() -> None:
    steps = instructions(DOCKERFILE)
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    (project,) = [r for r in runs if r.startswith("pip install .")]
    assert "SentimentClassifier.load()" in project  # the build fails without the model
    assert ("COPY", "model model") in steps
    env = " ".join(rest for keyword, rest in steps if keyword == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "SENTIMENT_HTTP_PORT=8080" in env
    (check,) = [rest for keyword, rest in steps if keyword == "HEALTHCHECK"]
    assert "/healthz" in check and "SENTIMENT_HTTP_PORT" in check and "timeout=" in check


def test_the_build_context_leaves_secrets_and_local_state_out() -> None:
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"  # everything is left out, then only what the image installs
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "model", "bot", "scripts/bootstrap.sh"}
    for _, rest in (s for s in instructions(DOCKERFILE) if s[0] == "COPY"):
        *sources, _ = rest.split()
        for source in sources:
            assert source.rstrip("/") in allowed, f"COPY {source}: left out by .dockerignore"
    for artifact in ("default.safetensors", "default.adapter"):
        assert (REPO / "model" / "artifacts" / artifact).exists()


# --------------------------------------------------------------------------------------------
# compose.yaml


def load_compose(variables: dict[str, str] | None = None) -> dict[str, Any]:
    """compose.yaml as docker compose reads it: ``${NAME}``, ``${NAME:?why}`` and
    ``${NAME:-default}`` replaced by ``variables[NAME]`` (None: left as written)."""
    text = COMPOSE.read_text()
    if variables is not None:
        text = re.sub(r"\$\{(\w+)(:?[-?][^}]*)?\}", lambda m: variables[m.group(1)], text)
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose({"POSTGRES_PASSWORD": "s3cret"})


def bots(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("build") == "."}


def test_compose_runs_postgresql_and_one_bot_per_shard_range(compose: dict[str, Any]) -> None:
    services = compose["services"]
    db = services["db"]
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in db["healthcheck"]["test"]
    running = bots(compose)
    assert len(running) >= 2
    counts = {s["environment"]["SENTIMENT_SHARD_COUNT"] for s in running.values()}
    assert len(counts) == 1  # every process agrees on the count
    count = int(counts.pop())
    ranges = [
        [int(i) for i in s["environment"]["SENTIMENT_SHARD_IDS"].split(",")]
        for s in running.values()
    ]
    every = sorted(i for r in ranges for i in r)
    assert every == list(range(count)), f"shards {every} of {count}: each exactly once"
    for name, service in running.items():
        assert service["depends_on"]["db"]["condition"] == "service_healthy", name
        url = urlsplit(service["environment"]["SENTIMENT_DB"])
        assert url.scheme == "postgresql" and url.hostname == "db", name
        assert url.path == "/" + db["environment"]["POSTGRES_DB"], name
        assert url.username == db["environment"]["POSTGRES_USER"], name
        assert url.password == db["environment"]["POSTGRES_PASSWORD"] == "s3cret", name
        assert service["environment"]["SENTIMENT_HTTP_PORT"] != "0", name  # the health check
        assert service["stop_grace_period"], name


def test_compose_sets_only_settings_the_bot_reads(compose: dict[str, Any]) -> None:
    known = {
        field.validation_alias
        for field in Settings.model_fields.values()
        if isinstance(field.validation_alias, str)
    }
    for name, service in bots(compose).items():
        unknown = set(service["environment"]) - known
        assert not unknown, f"{name}: {sorted(unknown)} are not settings"


def test_compose_keeps_the_password_out_of_the_file() -> None:
    compose = load_compose()
    password = compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${POSTGRES_PASSWORD:?")  # from .env; refuses to start without
    for service in bots(compose).values():
        assert "${POSTGRES_PASSWORD:?" in service["environment"]["SENTIMENT_DB"]


# --------------------------------------------------------------------------------------------
# systemd


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_restarts_on_failure_with_an_environment_file() -> None:
    service = unit()["Service"]
    assert service["ExecStart"].endswith("/.venv/bin/sentiment bot")
    assert service["EnvironmentFile"] == "/etc/sentiment-bot/env"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a setting to fix: no restart loop
    assert service["KillSignal"] == "SIGTERM"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_systemd_unit_is_hardened() -> None:
    service = unit()["Service"]
    for key, value in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert service.get(key) == value, key
    assert service["WorkingDirectory"] == "/var/lib/" + service["StateDirectory"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_knows_every_directive_of_the_unit(tmp_path: Path) -> None:
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text())
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, check=False
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        # the program is not installed on this machine: expected
        if line.strip() and "is not executable" not in line
    ]
    assert complaints == []
