"""The deployment files agree with each other and with tica: compose, Caddy, Kubernetes, the Dockerfile.

No container engine is needed: the files are parsed and compared.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

TICA_SERVICES = ("migrate", "forum", "notify", "search", "worker")
LONG_RUNNING = ("forum", "notify", "search", "worker")
HTTP_SERVICES = ("forum", "notify", "search")
REQUIRED_ENV = ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "TICA_SECRET_KEY", "TICA_BASE_URL", "DATA_DIR")
VARIABLE_NAMES = {var.name for var in VARIABLES}
DUMMY_SECRET = "x" * 48
INTERPOLATION = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*):\?[^}]+\}$")

# The public routes of the one origin (docs/API.md): path as Caddy matches it -> service.
ROUTES = {
    "/live": "notify",
    "/api/notifications*": "notify",
    "/api/me/preferences": "notify",
    "/api/watch": "notify",
    "/unsubscribe": "notify",
    "/notifications*": "notify",
    "/preferences*": "notify",
    "/api/search*": "search",
    "/search*": "search",
}


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def settings_env(env: dict[str, str]) -> dict[str, str]:
    """The environment with the secret key stood in for by a valid dummy (it is never in a file)."""
    return {**env, "TICA_SECRET_KEY": DUMMY_SECRET}


def is_valid_command(command: list[str], service: str) -> bool:
    """A tica command line this service may run: `tica serve <service> [--workers N]`, `tica worker`, `tica migrate`."""
    if service not in HTTP_SERVICES:
        return command == ["tica", service]
    options = command[3:]
    return command[:3] == ["tica", "serve", service] and (
        options == [] or (len(options) == 2 and options[0] == "--workers" and options[1].isdigit())
    )


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return docs


def k8s_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc.get("kind") == kind]


def caddy_routes(text: str) -> dict[str, str]:
    """Each Caddy path matcher -> the host of the reverse_proxy in its handle block; `*` is the fallback."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    matchers: dict[str, list[str]] = {}
    for line in lines:
        if found := re.match(r"^@(\w+)\s+path\s+(.+)$", line):
            matchers[found[1]] = found[2].split()
    routes: dict[str, str] = {}
    handler: str | None = None
    for line in lines:
        if found := re.match(r"^handle(?:\s+@(\w+))?\s*\{$", line):
            handler = found[1] or ""
        elif handler is not None and (found := re.match(r"^reverse_proxy\s+(\S+)$", line)):
            for path in matchers[handler] if handler else ["*"]:
                routes[path] = found[1]
            handler = None
    return routes


def test_compose_has_every_service() -> None:
    """docker-compose.yml parses and runs the servers, the mail catcher, the tica processes and the proxy."""
    services = load_compose()["services"]
    assert set(services) == {"postgres", "redis", "mailpit", "proxy", *TICA_SERVICES}


def test_compose_tica_services_build_the_dockerfile() -> None:
    """Every tica process is built from deploy/Dockerfile with the repo root as context."""
    services = load_compose()["services"]
    assert (DEPLOY / "Dockerfile").is_file()
    for name in TICA_SERVICES:
        assert services[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}, name


def test_compose_environment_names_are_settings() -> None:
    """Every variable set on a tica process is one shared.settings reads, and the required ones are all set."""
    services = load_compose()["services"]
    for name in TICA_SERVICES:
        unknown = set(environment(services[name])) - VARIABLE_NAMES
        assert not unknown, f"{name} sets variables tica does not read: {unknown}"
    for name in LONG_RUNNING:
        missing = set(REQUIRED_ENV) - set(environment(services[name]))
        assert not missing, f"{name} lacks {missing}"


def test_compose_environment_values_are_valid_settings() -> None:
    """The values parse with Settings.from_env and point at the compose servers and the published proxy port."""
    compose = load_compose()
    for name in TICA_SERVICES:
        settings = Settings.from_env(settings_env(environment(compose["services"][name])))
        assert settings.database_url and "@postgres:5432/" in settings.database_url
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.smtp_url == "smtp://mailpit:1025"
        assert settings.base_url == "http://localhost:8000"
        assert str(settings.data_dir) == "/data"
        assert settings.port == 8000
    assert "8000:80" in compose["services"]["proxy"]["ports"]


def test_compose_secret_key_is_interpolated() -> None:
    """TICA_SECRET_KEY comes from the operator's environment and compose stops when it is unset."""
    services = load_compose()["services"]
    for name in TICA_SERVICES:
        value = environment(services[name])["TICA_SECRET_KEY"]
        found = INTERPOLATION.match(value)
        assert found and found[1] == "TICA_SECRET_KEY", f"{name}: {value!r}"


def test_compose_commands_are_tica_subcommands() -> None:
    """Each tica process runs the subcommand that matches its name."""
    services = load_compose()["services"]
    for name in TICA_SERVICES:
        assert is_valid_command(services[name]["command"], name), services[name]["command"]


def test_compose_start_order() -> None:
    """The servers are healthy before migrate runs, and migrate has finished before the services start."""
    services = load_compose()["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    for name in TICA_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name in LONG_RUNNING:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_compose_healthchecks_use_readyz() -> None:
    """The HTTP services are healthy only when /readyz answers; the worker and migrate have no HTTP check."""
    services = load_compose()["services"]
    for name in HTTP_SERVICES:
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
        assert services["proxy"]["depends_on"][name]["condition"] == "service_healthy"
    for name in ("migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_caddy_routes_like_the_api_contract() -> None:
    """The Caddyfile sends notify's and search's paths to them and everything else to forum."""
    routes = caddy_routes((DEPLOY / "Caddyfile").read_text())
    for path, service in ROUTES.items():
        assert routes.get(path) == f"{service}:8000", path
    assert routes["*"] == "forum:8000"
    assert set(routes) == {*ROUTES, "*"}


def test_caddy_is_mounted_in_the_proxy() -> None:
    """The proxy service runs Caddy 2 with deploy/Caddyfile."""
    proxy = load_compose()["services"]["proxy"]
    assert proxy["image"] == "caddy:2"
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]


def test_dockerfile() -> None:
    """The image installs tica with its constraints and the npm assets, runs unprivileged and checks /healthz."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM node:20-slim AS assets$", text, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "npm ci --omit=dev" in text
    assert "pip install -c constraints.txt ." in text
    assert "COPY --from=assets /build/node_modules /app/node_modules" in text
    assert re.search(r"^USER (?!root\b)\w+$", text, re.MULTILINE)
    assert "DATA_DIR=/data" in text
    assert "urllib.request" in text and "/healthz" in text
    assert re.search(r'^CMD \["tica", "serve", "forum"\]$', text, re.MULTILINE)


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    """The build context has no git history, virtualenv, node_modules, local data or .env file."""
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "node_modules", "var", ".env"):
        assert entry in ignored, entry


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda path: path.name)
def test_k8s_manifest_parses(path: Path) -> None:
    """Each Kubernetes manifest is YAML whose documents name an apiVersion and kind."""
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is not None:
            assert doc["apiVersion"] and doc["kind"], path


def test_k8s_deployments_match_compose() -> None:
    """forum, notify and search run 2 replicas, the worker 1, each with its compose command."""
    services = load_compose()["services"]
    deployments = {doc["metadata"]["name"]: doc for doc in k8s_kind("Deployment")}
    assert {name: doc["spec"]["replicas"] for name, doc in deployments.items()} == {
        "forum": 2,
        "notify": 2,
        "search": 2,
        "worker": 1,
    }
    for name, doc in deployments.items():
        spec = doc["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        (container,) = spec["template"]["spec"]["containers"]
        assert container["command"] == services[name]["command"], name
        refs = {(next(iter(ref)), next(iter(ref.values()))["name"]) for ref in container["envFrom"]}
        assert refs == {("configMapRef", "tica-config"), ("secretRef", "tica-secrets")}, name
        if name in HTTP_SERVICES:
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_k8s_migrate_job_matches_compose() -> None:
    """The migrate Job runs the compose migrate command once, without restarting in place."""
    (job,) = k8s_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == load_compose()["services"]["migrate"]["command"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_k8s_ingress_routes_like_caddy() -> None:
    """The Ingress sends the same paths to the same services as the Caddyfile, through existing Services."""
    services = {doc["metadata"]["name"]: doc for doc in k8s_kind("Service")}
    deployments = {doc["metadata"]["name"]: doc for doc in k8s_kind("Deployment")}
    (ingress,) = k8s_kind("Ingress")
    (rule,) = ingress["spec"]["rules"]
    routes = {}
    for entry in rule["http"]["paths"]:
        backend = entry["backend"]["service"]
        routes[entry["path"]] = backend["name"]
        service = services[backend["name"]]
        assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
        pod_labels = deployments[backend["name"]]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
    expected = {path.rstrip("*"): service for path, service in ROUTES.items()}
    assert routes == {**expected, "/": "forum"}


def test_k8s_config_and_secret_are_valid_settings() -> None:
    """The ConfigMap and Secret template set only settings' variables, all required ones, with valid values."""
    (config,) = k8s_kind("ConfigMap")
    (secret,) = k8s_kind("Secret")
    env = {**config["data"], **secret["stringData"]}
    assert set(env) <= VARIABLE_NAMES
    assert set(REQUIRED_ENV) <= set(env)
    assert not set(config["data"]) & {"DATABASE_URL", "REDIS_URL", "SMTP_URL", "TICA_SECRET_KEY"}
    settings = Settings.from_env(settings_env(env))
    assert str(settings.data_dir) == "/data" and settings.port == 8000


def test_k8s_secret_is_a_template() -> None:
    """Every value of the Secret manifest is a placeholder, and kustomize does not apply it."""
    (secret,) = k8s_kind("Secret")
    assert "data" not in secret
    for name, value in secret["stringData"].items():
        assert "change-me" in value, name
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    listed = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == listed


def test_no_literal_secret_in_deploy_files() -> None:
    """No deploy file or compose file holds a private key or a random-looking token."""
    files = [path for path in DEPLOY.rglob("*") if path.is_file()] + [ROOT / "docker-compose.yml"]
    token = re.compile(r"[A-Za-z0-9_\-+/]{32,}")
    for path in files:
        text = path.read_text()
        assert "PRIVATE KEY" not in text, path
        for found in token.findall(text):
            mixed = re.search(r"[a-z]", found) and re.search(r"[A-Z]", found) and re.search(r"[0-9]", found)
            assert not mixed, f"{path}: {found}"
        for value in re.findall(r"TICA_SECRET_KEY\s*[:=]\s*(\S+)", text):
            assert value.lstrip('"').startswith("$") or "change-me" in value, f"{path}: {value}"
