"""docker/: the compose file and the Dockerfiles, read statically (no Docker engine here).

Services and their images or builds, every bind-mounted file or directory present in the
repository, healthchecks, unprivileged users, serial devices, volumes for data, and the
gateway's configuration pointing at the compose services of the broker and central."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.settings.load import load_settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = DOCKER / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes left out."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_the_four_services_and_what_they_run(compose: dict[str, Any]) -> None:
    found = services(compose)
    assert set(found) == {"gateway", "mosquitto", "central", "postgres"}
    for name, dockerfile in (("gateway", "gateway.Dockerfile"), ("central", "central.Dockerfile")):
        build = found[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
            DOCKER / dockerfile)
    assert found["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert found["postgres"]["image"].startswith("postgres:")
    assert found["central"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert set(found["gateway"]["depends_on"]) == {"mosquitto", "central"}


def test_every_mounted_file_is_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for source, target in bind_mounts(service):
            assert (COMPOSE.parent / source).exists(), f"{name}: {source} -> {target}"
    mosquitto = dict(bind_mounts(services(compose)["mosquitto"]))
    # The shipped ACL, TLS listener and logins, where config/mosquitto/mallgate.conf
    # expects them.
    assert mosquitto["../config/mosquitto"] == "/etc/mosquitto/mallgate"
    conf = (COMPOSE.parent / "mosquitto" / "compose.conf").read_text(encoding="utf-8")
    assert "include_dir /etc/mosquitto/mallgate" in conf
    assert "/etc/mosquitto/mallgate/acl" in (
        COMPOSE.parent / "../config/mosquitto/mallgate.conf").read_text(encoding="utf-8")


def test_data_lives_in_volumes_and_secrets_in_files_kept_out_of_git(
        compose: dict[str, Any]) -> None:
    found = services(compose)
    expected = {"gateway": "/var/lib/mallgate", "mosquitto": "/mosquitto/data",
                "central": "/var/lib/mallgate-central",
                "postgres": "/var/lib/postgresql/data"}
    for name, path in expected.items():
        named = {str(v).split(":")[1] for v in found[name]["volumes"]
                 if not str(v).startswith((".", "/"))}
        assert path in named, name
    assert set(compose["volumes"]) == {"gateway-data", "mosquitto-data", "central-data",
                                       "postgres-data"}
    ignored = (DOCKER / "secrets" / ".gitignore").read_text(encoding="utf-8").split()
    assert ignored[0] == "*"
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("secrets/")
    assert "POSTGRES_PASSWORD" not in found["postgres"]["environment"]  # only its _FILE


def test_healthchecks(compose: dict[str, Any]) -> None:
    found = services(compose)
    for name, port in (("gateway", 8080), ("central", 8090)):
        check = " ".join(found[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in check, name
    assert "pg_isready" in " ".join(found["postgres"]["healthcheck"]["test"])
    for dockerfile in ("gateway.Dockerfile", "central.Dockerfile"):
        text = (DOCKER / dockerfile).read_text(encoding="utf-8")
        assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.MULTILINE), dockerfile


@pytest.mark.parametrize("dockerfile", ["gateway.Dockerfile", "central.Dockerfile"])
def test_images_are_slim_and_run_unprivileged(dockerfile: str) -> None:
    # One instruction a line: continuation lines joined.
    text = re.sub(r"\\\n\s*", " ", (DOCKER / dockerfile).read_text(encoding="utf-8"))
    lines = text.splitlines()
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms and all(image.endswith("-slim-bookworm") for image in froms)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}
    assert any(line.startswith("RUN useradd --system") and users[-1] in line for line in lines)
    # The runtime dependencies only: no test extra, nothing compiled.
    installs = [line for line in lines if "pip install" in line]
    assert installs and all("[test]" not in line and "--only-binary :all:" in line
                            for line in installs)


def test_the_gateway_gets_its_serial_ports_and_descriptors(compose: dict[str, Any]) -> None:
    gateway = services(compose)["gateway"]
    assert all(device.startswith("/dev/") for device in gateway["devices"])
    assert gateway["ulimits"]["nofile"] >= 4096
    assert "dialout" in (DOCKER / "gateway.Dockerfile").read_text(encoding="utf-8")


def test_the_gateway_configuration_points_at_the_compose_services(
        compose: dict[str, Any]) -> None:
    found = services(compose)
    mounts = {target: source for source, target in bind_mounts(found["gateway"])}
    config = COMPOSE.parent / mounts["/etc/mallgate/mallgate.toml"]
    settings = load_settings(config, environ={})
    assert settings.kiosk.broker == "external" and settings.kiosk.host == "mosquitto"
    conf = (DOCKER / "mosquitto" / "compose.conf").read_text(encoding="utf-8")
    assert f"listener {settings.kiosk.port}\n" in conf  # not the shipped loopback one
    assert settings.central.url is not None
    central = urlsplit(settings.central.url)
    assert central.hostname == "central"
    assert f"--port {central.port}" in " ".join(map(str, found["central"]["command"]))
    assert str(settings.store.path).startswith("/var/lib/mallgate/")
    assert found["gateway"]["environment"]["MALLGATE__CENTRAL__TOKEN_FILE"] == (
        "/run/secrets/central_token")  # noqa: S105 - a path, not a password


def test_the_shipped_production_configurations_log_json(compose: dict[str, Any]) -> None:
    """A log collector reads one JSON object per line; the demo stays readable."""
    found = services(compose)
    mounts = {target: source for source, target in bind_mounts(found["gateway"])}
    gateway = load_settings(COMPOSE.parent / mounts["/etc/mallgate/mallgate.toml"], environ={})
    assert gateway.logging.format == "json"
    example = load_settings(DOCKER.parent / "config" / "example-mall.toml", environ={})
    assert example.logging.format == "json"
    demo = load_settings(DOCKER.parent / "config" / "demo.toml", environ={})
    assert demo.logging.format == "console"
    central = (DOCKER / "central.Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ENV MALLGATE_CENTRAL_LOG_FORMAT=json$", central, re.MULTILINE)
    assert "--log-format" not in " ".join(map(str, found["central"]["command"]))  # the image's
