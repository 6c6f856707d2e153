"""Validate rendered Kubernetes manifests offline: schemas, then what Pont relies on.

    kubectl kustomize infra/k8s/base | .venv/bin/python infra/k8s/validate.py -

1. Every built-in object against the Kubernetes JSON schemas bundled by the PyPI package
   `kubernetes-validate`, strict (an unknown or misspelt field is an error), for the oldest and
   the newest Kubernetes release Pont supports (VERSIONS); KEDA's ScaledObject and
   TriggerAuthentication against the schemas in infra/k8s/schemas/. A kind with no schema is an error.
2. Across objects, what no schema can say: each container has an image; liveness on `/health` and
   readiness on `/ready` at a port the container declares, which is the port the runner is given
   (`--port`) and the one Prometheus scrapes; resources; non-root; a grace period for in-flight work;
   services skip migrations at start and each database has its `pont-migrate` Job; selectors select
   the pod template; every referenced ConfigMap, Secret (and key), Deployment and
   TriggerAuthentication exists; each Deployment has a Service, a PodDisruptionBudget and a
   ScaledObject; every Secret value is a placeholder.

Exit status 1 with one line per problem.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

VERSIONS = ("1.29.0", "1.37.0")
SCHEMAS = Path(__file__).resolve().parent / "schemas"
PLACEHOLDER = "REPLACE-ME"
MIN_GRACE_SECONDS = 30
KEDA = "keda.sh/v1alpha1"


def load(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def name_of(doc: dict) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def schema_problems(doc: dict) -> list[str]:
    return list(_schema_problems(json.dumps(doc, sort_keys=True)))


@functools.lru_cache(maxsize=512)  # the same object is validated once (the tests validate many variants)
def _schema_problems(serialised: str) -> tuple[str, ...]:
    doc = json.loads(serialised)
    api_version, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    if api_version == KEDA:
        path = SCHEMAS / f"{kind.lower()}-keda-v1alpha1.json"
        if not path.exists():
            return (f"{name_of(doc)}: no schema for {kind} ({api_version})",)
        validator = jsonschema.Draft202012Validator(json.loads(path.read_text()))
        return tuple(f"{name_of(doc)}: {'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
                     for error in validator.iter_errors(doc))
    found = []
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(map(str, error.path)) or "(root)"
            found.append(f"{name_of(doc)}: Kubernetes {version}: {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            found.append(f"{name_of(doc)}: Kubernetes {version} has no {kind} in {api_version}")
    return tuple(found)


def _selects(selector: dict, pod_labels: dict) -> bool:
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(pod_labels.get(k) == v for k, v in wanted.items())


def _port(container: dict, reference) -> int | None:
    """The container port a probe names (by name or number), None if it declares none such."""
    for port in container.get("ports") or []:
        if reference in (port.get("name"), port.get("containerPort")):
            return port["containerPort"]
    return None


def _env(container: dict, config_maps: dict, secrets: dict) -> dict[str, str]:
    values = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            values.update(config_maps.get(source["configMapRef"]["name"], {}))
        if "secretRef" in source:
            values.update(secrets.get(source["secretRef"]["name"], {}))
    values.update({item["name"]: item.get("value", "") for item in container.get("env") or []})
    return values


def _references(where: str, pod: dict, config_maps: dict, secrets: dict) -> list[str]:
    found = []
    for container in pod.get("containers", []):
        if not str(container.get("image") or "").strip():
            found.append(f"{where}: container {container.get('name')!r} has no image")
        for source in container.get("envFrom") or []:
            if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                found.append(f"{where}: ConfigMap {source['configMapRef']['name']!r} does not exist")
            if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                found.append(f"{where}: Secret {source['secretRef']['name']!r} does not exist")
        sec = container.get("securityContext") or {}
        if sec.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: container {container.get('name')!r} may escalate privileges")
        requests = (container.get("resources") or {}).get("requests") or {}
        limits = (container.get("resources") or {}).get("limits") or {}
        if not {"cpu", "memory"} <= set(requests) or "memory" not in limits:
            found.append(f"{where}: container {container.get('name')!r} lacks cpu/memory requests or a memory limit")
    security = pod.get("securityContext") or {}
    if security.get("runAsNonRoot") is not True or security.get("runAsUser") in (0, None):
        found.append(f"{where}: pod does not run as a non-root user (runAsNonRoot, runAsUser)")
    return found


def deployment_problems(doc: dict, config_maps: dict, secrets: dict) -> list[str]:
    where = name_of(doc)
    spec = doc.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    found = _references(where, pod, config_maps, secrets)
    if not _selects(spec.get("selector") or {}, (template.get("metadata") or {}).get("labels") or {}):
        found.append(f"{where}: selector does not select its pod template")
    if (pod.get("terminationGracePeriodSeconds") or 30) < MIN_GRACE_SECONDS or \
            "terminationGracePeriodSeconds" not in pod:
        found.append(f"{where}: terminationGracePeriodSeconds must be set, at least {MIN_GRACE_SECONDS}")
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    for container in pod.get("containers", []):
        cname = f"{where} container {container.get('name')!r}"
        probes = {"livenessProbe": "/health", "readinessProbe": "/ready"}
        ports = set()
        for probe, path in probes.items():
            get = (container.get(probe) or {}).get("httpGet")
            if not get:
                found.append(f"{cname}: no {probe} (HTTP GET {path})")
                continue
            if get.get("path") != path:
                found.append(f"{cname}: {probe} path is {get.get('path')!r}, not {path!r}")
            port = _port(container, get.get("port"))
            if port is None:
                found.append(f"{cname}: {probe} port {get.get('port')!r} is not a port of the container")
            ports.add(port)
        command = container.get("command") or []
        if "--port" in command and command.index("--port") + 1 < len(command):
            given = int(command[command.index("--port") + 1])
            if ports - {None} and ports - {None} != {given}:
                found.append(f"{cname}: probes reach port {sorted(ports - {None})}, the service listens on {given}")
            if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/port") != str(given):
                found.append(f"{cname}: Prometheus annotations do not scrape port {given}")
        env = _env(container, config_maps, secrets)
        if env.get("PONT_MIGRATE_AT_START", "true").lower() not in ("false", "0", "no"):
            found.append(f"{cname}: PONT_MIGRATE_AT_START is not false (the migration Job migrates)")
    return found


def job_problems(doc: dict, config_maps: dict, secrets: dict) -> list[str]:
    where = name_of(doc)
    pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
    found = _references(where, pod, config_maps, secrets)
    for container in pod.get("containers", []):
        if (container.get("command") or [None])[0] != "pont-migrate":
            found.append(f"{where}: container {container.get('name')!r} does not run pont-migrate")
        elif not any(key.endswith("_DATABASE_URL") for key in _env(container, config_maps, secrets)):
            found.append(f"{where}: container {container.get('name')!r} is given no database URL")
    return found


def problems(documents: list[dict]) -> list[str]:
    found = [problem for doc in documents for problem in schema_problems(doc)]
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in documents:
        by_kind.setdefault(doc.get("kind", ""), {})[(doc.get("metadata") or {}).get("name")] = doc
    config_maps = {n: d.get("data") or {} for n, d in by_kind.get("ConfigMap", {}).items()}
    secrets = {n: {**(d.get("data") or {}), **(d.get("stringData") or {})}
               for n, d in by_kind.get("Secret", {}).items()}
    for name, doc in by_kind.get("Secret", {}).items():
        if doc.get("data"):
            found.append(f"Secret/{name}: base64 `data` in a manifest; placeholders go in stringData")
        for key, value in (doc.get("stringData") or {}).items():
            if PLACEHOLDER not in str(value):
                found.append(f"Secret/{name}: {key} is not a placeholder ({PLACEHOLDER}): no real secret in a manifest")
    deployments = by_kind.get("Deployment", {})
    for doc in deployments.values():
        found += deployment_problems(doc, config_maps, secrets)
    for doc in by_kind.get("Job", {}).values():
        found += job_problems(doc, config_maps, secrets)
    migrated = {((d.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/instance")
                for d in by_kind.get("Job", {}).values()}
    for name, doc in deployments.items():
        pod_labels = doc["spec"]["template"]["metadata"].get("labels") or {}
        container = (doc["spec"]["template"]["spec"].get("containers") or [{}])[0]
        if any(key.endswith("_DATABASE_URL") for key in _env(container, config_maps, secrets)) and name not in migrated:
            found.append(f"Deployment/{name}: has a database but no migration Job")
        services = [s for s in by_kind.get("Service", {}).values()
                    if _selects((s.get("spec") or {}).get("selector") or {}, pod_labels)]
        if not services:
            found.append(f"Deployment/{name}: no Service selects its pods")
        for svc in services:
            for port in (svc.get("spec") or {}).get("ports") or []:
                if _port(container, port.get("targetPort", port.get("port"))) is None:
                    found.append(f"{name_of(svc)}: targetPort {port.get('targetPort')!r} "
                                 f"is no port of Deployment/{name}")
        if not any(_selects((p.get("spec") or {}).get("selector") or {}, pod_labels)
                   for p in by_kind.get("PodDisruptionBudget", {}).values()):
            found.append(f"Deployment/{name}: no PodDisruptionBudget")
        if not any(((s.get("spec") or {}).get("scaleTargetRef") or {}).get("name") == name
                   for s in by_kind.get("ScaledObject", {}).values()):
            found.append(f"Deployment/{name}: no ScaledObject scales it")
    auths = by_kind.get("TriggerAuthentication", {})
    for name, doc in by_kind.get("ScaledObject", {}).items():
        spec = doc.get("spec") or {}
        if (spec.get("scaleTargetRef") or {}).get("name") not in deployments:
            found.append(f"ScaledObject/{name}: scales Deployment {(spec.get('scaleTargetRef') or {}).get('name')!r}, "
                         f"which does not exist")
        for trigger in spec.get("triggers") or []:
            ref = (trigger.get("authenticationRef") or {}).get("name")
            if trigger.get("type") == "rabbitmq" and ref not in auths:
                found.append(f"ScaledObject/{name}: trigger {trigger.get('name')!r} uses TriggerAuthentication "
                             f"{ref!r}, which does not exist")
    for name, doc in auths.items():
        for ref in (doc.get("spec") or {}).get("secretTargetRef") or []:
            if ref.get("key") not in secrets.get(ref.get("name"), {}):
                found.append(f"TriggerAuthentication/{name}: Secret {ref.get('name')!r} has no key {ref.get('key')!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = args[0] if args else "-"
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    documents = load(text)
    if not documents:
        print("no manifests to validate", file=sys.stderr)
        return 1
    found = problems(documents)
    if found:
        print("\n".join(found), file=sys.stderr)
        return 1
    kinds = sorted({doc["kind"] for doc in documents})
    print(f"{len(documents)} manifests valid (Kubernetes {' and '.join(VERSIONS)}, KEDA {KEDA}): {', '.join(kinds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
