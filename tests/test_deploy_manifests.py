"""The deployment artefacts: Dockerfile, docker-compose.yml, deploy/prometheus/ and the
Kubernetes manifests in deploy/kubernetes/.

Every Kubernetes document is checked against the API's schema (kubernetes-validate, strict:
an unknown or misspelt field fails), then for what the schema cannot see: the hardening of
every container, the probes, names that must agree across files (the headless Service, the
shards' advertised DNS name, the Secret's keys, the shard count), and that every GATEWAY_*
variable names a real setting and the ConfigMap's TOML loads into Settings the way the
gateway loads it. No network, no cluster, no Docker.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import msgspec
import pytest
import yaml

from gateway.config import _TOP_LEVEL_KEYS, ClusterSettings, ServerSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
K8S_DIR = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes the manifests promise to work on; kubernetes-validate>=1.30 (the dev
# extra) ships its schemas.
KUBERNETES_VERSION = "1.30"
NAMESPACE = "wallet-gateway"
UID = 10001
IMAGE = "wallet-gateway:latest"
DATA_DIR = "/app/var"
SECRET_NAME = "gateway-secrets"
CONFIGMAP_NAME = "gateway-config"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
COMPOSE_SERVICES = {"postgres", "redis", "migrate", "gateway", "prometheus", "grafana"}

# GATEWAY_* variables the gateway reads that are not settings (gateway/config.py reads
# GATEWAY_CONFIG, gateway/cli.py GATEWAY_MIGRATE_ON_START), and the two short forms.
NOT_SETTINGS = {"GATEWAY_CONFIG", "GATEWAY_MIGRATE_ON_START"}
SHORT_FORMS = {"GATEWAY_DATABASE_URL": ("database", "url"), "GATEWAY_REDIS_URL": ("redis", "url")}

Doc = dict[str, Any]


def _load_manifests() -> list[tuple[str, Doc]]:
    """(file name, document) for every document of deploy/kubernetes/*.yaml except the
    kustomization, which is kustomize's file, not a Kubernetes resource."""
    docs: list[tuple[str, Doc]] = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


MANIFESTS = _load_manifests()


def _the(kind: str, name: str) -> Doc:
    found = [doc for _, doc in MANIFESTS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _all(kind: str) -> list[Doc]:
    return [doc for _, doc in MANIFESTS if doc["kind"] == kind]


def _pod_template(doc: Doc) -> Doc:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def _workloads() -> Iterator[tuple[Doc, Doc]]:
    """(workload, its pod spec) for every Deployment, StatefulSet, Job and CronJob."""
    for _, doc in MANIFESTS:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc, _pod_template(doc)["spec"]


def _containers(pod_spec: Doc) -> list[Doc]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec["containers"])


def _where(workload: Doc, container: Doc | None = None) -> str:
    where = f"{workload['kind']} {workload['metadata']['name']}"
    return f"{where}, container {container['name']}" if container is not None else where


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) matches ``labels``."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


def _pod_labels(doc: Doc) -> dict[str, str]:
    return dict(_pod_template(doc)["metadata"]["labels"])


def _port_number(container: Doc, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"container {container['name']} has no port named {port!r}"
    return int(named[0])


def _secret_data() -> dict[str, str]:
    secret = _the("Secret", SECRET_NAME)
    assert "data" not in secret, "keep the placeholders readable: stringData only"
    return dict(secret["stringData"])


# ---- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("file_name", "doc"), MANIFESTS,
                         ids=[f"{f}:{d.get('kind')}/{d.get('metadata', {}).get('name')}" for f, d in MANIFESTS])
def test_manifest_is_valid_for_kubernetes(file_name: str, doc: Doc) -> None:
    problem = ""
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:  # its str() is the whole schema: too long to read
        path = "/".join(str(p) for p in exc.absolute_path)
        problem = f"{file_name}: {doc['kind']} {doc['metadata'].get('name')}: at {path or '/'}: {exc.message}"
    if problem:  # failed outside the except block, so the report is not chained to the schema dump
        pytest.fail(problem, pytrace=False)
    if doc["kind"] == "Namespace":
        assert doc["metadata"]["name"] == NAMESPACE
    else:
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{file_name}: namespace {NAMESPACE} expected"


def test_manifests_are_there() -> None:
    kinds = {doc["kind"] for _, doc in MANIFESTS}
    assert kinds >= {"Namespace", "ConfigMap", "Secret", "Service", "StatefulSet", "Deployment", "Job",
                     "CronJob", "PodDisruptionBudget", "NetworkPolicy"}
    names = [(doc["kind"], doc["metadata"]["name"]) for _, doc in MANIFESTS]
    assert len(names) == len(set(names)), "a kind and name appears twice"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == NAMESPACE
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    on_disk = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk, f"missing: {sorted(on_disk - set(listed))}, absent: {sorted(set(listed) - on_disk)}"
    assert not list(K8S_DIR.glob("*.yml")), "name manifests *.yaml (the kustomization and this test read those)"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (its built-in kustomize) is not installed")
def test_kustomize_renders_the_manifests() -> None:
    """``kubectl kustomize`` (offline: no cluster needed) builds the same resources."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    out = subprocess.run([kubectl, "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    rendered = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in yaml.safe_load_all(out.stdout) if d}
    assert rendered == {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for _, d in MANIFESTS}


# ---- every workload ----------------------------------------------------------------------------


def test_every_container_is_hardened() -> None:
    workloads = list(_workloads())
    assert {w["kind"] for w, _ in workloads} == set(WORKLOAD_KINDS)
    for workload, pod in workloads:
        where = _where(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == UID, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, f"{where}: needs no API token"
        # A Service named "gateway" would put GATEWAY_SERVICE_HOST, GATEWAY_PORT... into every
        # container's environment, where GATEWAY_* names settings.
        assert pod.get("enableServiceLinks") is False, f"{where}: enableServiceLinks must be false"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in _containers(pod):
            where = _where(workload, container)
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] == UID, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert sc.get("privileged") in (None, False), where
            assert container["image"] == IMAGE, where
            assert container["imagePullPolicy"] == "IfNotPresent", where
            assert container["resources"]["requests"] and container["resources"]["limits"], where
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            # The read-only root: the data dir (sockets, metrics files) is an emptyDir.
            assert DATA_DIR in mounts, f"{where}: no volume on {DATA_DIR}"
            assert "emptyDir" in volumes[mounts[DATA_DIR]["name"]], f"{where}: {DATA_DIR} must be an emptyDir"
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["GATEWAY_DATA_DIR"]["value"] == DATA_DIR, where
            # The config file: GATEWAY_CONFIG names the ConfigMap's key where it is mounted.
            config_path = Path(env["GATEWAY_CONFIG"]["value"])
            mount = mounts[str(config_path.parent)]
            assert mount.get("readOnly") is True, where
            config_volume = volumes[mount["name"]]["configMap"]
            assert config_volume["name"] == CONFIGMAP_NAME, where
            assert config_path.name in _the("ConfigMap", CONFIGMAP_NAME)["data"], where
            assert not container.get("envFrom"), f"{where}: name each variable (env), so this test sees them"


def _env_names() -> Iterator[tuple[str, str]]:
    """(where, name) for every environment variable of every container and compose service."""
    for workload, pod in _workloads():
        for container in _containers(pod):
            for var in container.get("env", []):
                yield _where(workload, container), var["name"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        names = env if isinstance(env, dict) else [item.split("=", 1)[0] for item in env]
        for var in names:
            yield f"docker-compose.yml service {name}", var
    for key in _secret_data():
        yield f"Secret {SECRET_NAME}", key


def _setting_path(name: str) -> tuple[str, ...] | None:
    """The settings path a GATEWAY_* variable sets (gateway/config.py ``_env_overrides``:
    GATEWAY_<SECTION>__<FIELD>, the short forms, the top-level keys); None if it sets none."""
    if name in NOT_SETTINGS:
        return None
    if name in SHORT_FORMS:
        return SHORT_FORMS[name]
    return tuple(name[len("GATEWAY_"):].lower().split("__"))


def test_every_gateway_variable_names_a_setting() -> None:
    sections = {f.name: f.type for f in msgspec.structs.fields(Settings)}
    checked = 0
    for where, name in _env_names():
        if not name.startswith("GATEWAY_"):
            continue
        path = _setting_path(name)
        if path is None:
            continue
        checked += 1
        if len(path) == 1:
            # Any other single name is silently ignored by the gateway.
            assert path[0] in _TOP_LEVEL_KEYS, f"{where}: {name} is read only for {_TOP_LEVEL_KEYS}"
            continue
        assert len(path) == 2, f"{where}: {name}: GATEWAY_<SECTION>__<FIELD>"
        section, field = path
        section_type = sections.get(section)
        assert isinstance(section_type, type) and issubclass(section_type, msgspec.Struct), \
            f"{where}: {name}: no settings section [{section}]"
        fields = {f.name for f in msgspec.structs.fields(section_type)}
        assert field in fields, f"{where}: {name}: [{section}] has no {field!r}"
    assert checked >= 10


def test_secret_references_exist() -> None:
    keys = set(_secret_data())
    assert {"GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL", "GATEWAY_CLUSTER__CHANNEL_SECRET"} <= keys
    for value in _secret_data().values():
        assert "CHANGE-ME" in value, "every value of the shipped Secret is a marked placeholder"
    referenced = set()
    for workload, pod in _workloads():
        for container in _containers(pod):
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                where = _where(workload, container)
                assert ref["name"] == SECRET_NAME, f"{where}: {var['name']} from an unknown Secret {ref['name']}"
                assert ref["key"] in keys, f"{where}: {var['name']}: the Secret has no key {ref['key']}"
                assert not ref.get("optional"), where
                referenced.add(ref["key"])
    assert referenced == keys, f"unused Secret keys: {sorted(keys - referenced)}"


# ---- the configuration ---------------------------------------------------------------------


def _environ(container: Doc, secret: dict[str, str]) -> dict[str, str]:
    """The container's environment as the gateway sees it, the Secret's values filled in."""
    environ: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            environ[var["name"]] = var["value"]
        else:
            environ[var["name"]] = secret[var["valueFrom"]["secretKeyRef"]["key"]]
    return environ


def test_configmap_loads_into_settings_for_every_container(tmp_path: Path) -> None:
    text = _the("ConfigMap", CONFIGMAP_NAME)["data"]["gateway.toml"]
    data = tomllib.loads(text)
    assert data["mode"] == "production"
    assert data["security"]["inline_secrets_allowed"] is False
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(text)
    # The shipped placeholder is refused (too short), so nobody runs with it by mistake;
    # a real one (32+ characters) is accepted.
    secret = _secret_data() | {"GATEWAY_CLUSTER__CHANNEL_SECRET": "x" * 64}
    loaded = 0
    for workload, pod in _workloads():
        for container in _containers(pod):
            environ = _environ(container, secret)
            settings = load_settings(config_file, environ=environ)  # what the gateway does at start
            where = _where(workload, container)
            assert settings.mode == "production", where
            assert settings.resolve_path(settings.data_dir) == Path(DATA_DIR), where
            assert settings.database.url == secret["GATEWAY_DATABASE_URL"], where
            assert settings.redis.url == secret["GATEWAY_REDIS_URL"], where
            loaded += 1
    assert loaded == 4
    edge = _the("Deployment", "gateway-edge")
    environ = _environ(_pod_template(edge)["spec"]["containers"][0], _secret_data())
    with pytest.raises(ValueError, match="channel_secret"):
        load_settings(config_file, environ=environ)


def test_configmap_sets_only_real_settings() -> None:
    data = tomllib.loads(_the("ConfigMap", CONFIGMAP_NAME)["data"]["gateway.toml"])
    # forbid_unknown_fields: a misspelt key fails here even without the defaults merged in.
    msgspec.convert(data, Settings, strict=False)
    cluster = data["cluster"]
    assert "channel_secret" not in cluster, "the channel secret comes from the Secret, not the ConfigMap"
    assert cluster["channel_timeout_ms"] > data["shard"]["commit_timeout_ms"]


# ---- shards --------------------------------------------------------------------------------------


def test_shard_statefulset_and_headless_service() -> None:
    sts = _the("StatefulSet", "gateway-shard")
    service = _the("Service", sts["spec"]["serviceName"])
    assert service["metadata"]["name"] == "gateway-shards"
    assert service["spec"]["clusterIP"] == "None", "the shards' Service must be headless"
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(sts))
    assert _selects(sts["spec"]["selector"], _pod_labels(sts))
    spec = sts["spec"]
    assert spec["replicas"] == 2
    assert spec["podManagementPolicy"] == "Parallel"
    pod = _pod_template(sts)["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    (container,) = pod["containers"]
    [service_port] = service["spec"]["ports"]
    assert service_port["port"] == 7000 and _port_number(container, service_port["targetPort"]) == 7000
    command = container["command"]
    assert command[:2] == ["sh", "-c"] and command[2].startswith("exec gateway shard ")
    advertised = f"${{HOSTNAME}}.{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:7000"
    assert command[2].split() == ["exec", "gateway", "shard", "--shard-id", "${HOSTNAME##*-}",
                                  "--listen", "0.0.0.0:7000", "--advertise", advertised]
    for probe in ("readinessProbe", "livenessProbe"):
        assert _port_number(container, container[probe]["tcpSocket"]["port"]) == 7000, probe
    for key in ("requests", "limits"):
        assert str(container["resources"][key]["cpu"]) == "1", key
    env = {e["name"] for e in container["env"]}
    assert "GATEWAY_CLUSTER__CHANNEL_SECRET" in env, "a TCP shard needs the channel secret"
    # Only the edges reach port 7000.
    policies = [p for p in _all("NetworkPolicy") if _selects(p["spec"]["podSelector"], _pod_labels(sts))]
    assert policies and all("Ingress" in p["spec"]["policyTypes"] for p in policies)
    edge_labels = _pod_labels(_the("Deployment", "gateway-edge"))
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert rule["from"], "an ingress rule without 'from' admits everyone"
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"} and _selects(peer["podSelector"], edge_labels), peer
            assert [(p["port"], p.get("protocol", "TCP")) for p in rule["ports"]] == [(7000, "TCP")]


def test_the_shard_count_agrees() -> None:
    replicas = _the("StatefulSet", "gateway-shard")["spec"]["replicas"]
    job = _the("Job", "gateway-migrate")
    (container,) = _pod_template(job)["spec"]["containers"]
    script = container["command"][-1]
    assert container["command"][:2] == ["sh", "-c"]
    assert re.fullmatch(rf"gateway migrate && gateway shards init --shards {replicas}", script), script
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    init = re.search(r"shards init --shards (\d+)", " ".join(compose["migrate"]["command"]))
    serve = compose["gateway"]["command"]
    assert init and serve[serve.index("--shards") + 1] == init.group(1)


# ---- edges ---------------------------------------------------------------------------------------


def test_edge_deployment_and_service() -> None:
    edge = _the("Deployment", "gateway-edge")
    assert edge["spec"]["replicas"] == 2
    assert _selects(edge["spec"]["selector"], _pod_labels(edge))
    pod = _pod_template(edge)["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["gateway", "edge", "--host", "0.0.0.0", "--port", "8080"]
    ready, live = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and _port_number(container, ready["port"]) == 8080
    assert live["path"] == "/healthz" and _port_number(container, live["port"]) == 8080
    # SIGTERM: the preStop sleep (the Service drains), then the gateway's own drain, within
    # the grace period.
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    drain_s = tomllib.loads(_the("ConfigMap", CONFIGMAP_NAME)["data"]["gateway.toml"])["cluster"].get(
        "drain_timeout_s", ClusterSettings().drain_timeout_s)
    assert pod["terminationGracePeriodSeconds"] == 30
    assert int(sleep[1]) + drain_s < pod["terminationGracePeriodSeconds"]
    service = _the("Service", "gateway")
    assert service["spec"].get("clusterIP") != "None"
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(edge))
    [port] = service["spec"]["ports"]
    assert port["port"] == 80 and _port_number(container, port["targetPort"]) == 8080


def test_disruption_budgets() -> None:
    budgets = _all("PodDisruptionBudget")
    for workload in (_the("StatefulSet", "gateway-shard"), _the("Deployment", "gateway-edge")):
        covering = [b for b in budgets if _selects(b["spec"]["selector"], _pod_labels(workload))]
        assert len(covering) == 1, _where(workload)
        assert covering[0]["spec"].get("maxUnavailable") == 1, _where(workload)


# ---- jobs ----------------------------------------------------------------------------------------


def test_prune_keys_cronjob() -> None:
    cron = _the("CronJob", "gateway-prune-keys")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    minute, hour, day, month, weekday = cron["spec"]["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and (day, month, weekday) == ("*", "*", "*"), "daily"
    (container,) = _pod_template(cron)["spec"]["containers"]
    assert container["command"] == ["gateway", "prune-keys"]
    assert _pod_template(cron)["spec"]["restartPolicy"] in ("Never", "OnFailure")


def test_jobs_accept_no_connections() -> None:
    for workload in (_the("Job", "gateway-migrate"), _the("CronJob", "gateway-prune-keys")):
        policies = [p for p in _all("NetworkPolicy") if _selects(p["spec"]["podSelector"], _pod_labels(workload))]
        assert policies, _where(workload)
        assert all("Ingress" in p["spec"]["policyTypes"] and not p["spec"].get("ingress") for p in policies)


# ---- docker-compose, Prometheus ------------------------------------------------------------


def test_docker_compose() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == COMPOSE_SERVICES
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["image"] == "postgres:16"
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert services["redis"]["image"] == "redis:7"
    migrate, gateway = services["migrate"], services["gateway"]
    assert "gateway migrate && gateway shards init" in " ".join(migrate["command"])
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert gateway["build"] == "."
    assert gateway["command"][:4] == ["gateway", "serve", "--host", "0.0.0.0"]
    assert gateway["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert gateway["environment"]["GATEWAY_DATABASE_URL"] == "postgresql://gateway:gateway@postgres:5432/gateway"
    assert gateway["environment"]["GATEWAY_REDIS_URL"] == "redis://redis:6379/0"
    assert migrate["environment"] == gateway["environment"]
    assert "8080:8080" in gateway["ports"]
    assert gateway["stop_grace_period"] == "30s"
    [mount] = [v for v in services["prometheus"]["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro")]
    assert (ROOT / mount.split(":")[0]).resolve() == ROOT / "deploy" / "prometheus" / "prometheus.yml"


def test_prometheus_scrapes_the_gateway() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"  # gateway/app.py, unauthenticated
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"gateway:{ServerSettings().port}"]


# ---- Dockerfile ----------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    froms = [i for i, (ins, _) in enumerate(instructions) if ins == "FROM"]
    assert froms, "no FROM"
    for i in froms:
        assert instructions[i][1].split()[0] == "python:3.11-slim"
    final = instructions[froms[-1]:]
    users = [args for ins, args in final if ins == "USER"]
    assert users, "the final stage has no USER"
    assert users[-1] not in ("root", "0") and not users[-1].startswith(("root:", "0:")), "runs as root"
    # By number, the uid the manifests give (runAsNonRoot can only verify a numeric USER).
    assert users[-1].split(":")[0] == str(UID)
    after_user = final[[ins for ins, _ in final].index("USER"):]
    assert not [a for ins, a in after_user if ins == "USER" and a.split(":")[0] in ("root", "0")], "USER root after USER"
    assert any(ins == "RUN" and "--uid 10001" in args for ins, args in final), "the non-root user is uid 10001"
    healthchecks = [args for ins, args in final if ins == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/readyz" in healthchecks[0]
    assert "GATEWAY_SERVER__PORT" in healthchecks[0] and f"'{ServerSettings().port}'" in healthchecks[0]
    [cmd] = [args for ins, args in final if ins == "CMD"]
    assert json.loads(cmd) == ["gateway", "serve", "--host", "0.0.0.0"]
    assert any(ins == "RUN" and "compileall" in args for ins, args in instructions)
    assert any(ins == "COPY" and args.startswith("pyproject.toml") for ins, args in instructions), \
        "the dependency layer is built from pyproject.toml alone"


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "var", ".pytest_cache", ".hypothesis", "benchmarks", "tests"} <= entries
