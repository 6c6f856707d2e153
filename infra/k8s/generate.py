"""Pont's Kubernetes base (kustomize), generated from the configuration that names its processes.

The same plan as `make start` and the broker definitions (`pont_shared.operations.stack.planned`:
every service, and one `agency_link` per organisation of `PONT_AGENCIES`), so the manifests, the
RabbitMQ users and the local stack cannot drift apart. Per process:

* a Deployment (liveness `/health`, readiness `/ready`, resources, non-root, a grace period for
  in-flight work, Prometheus scrape annotations, `PONT_MIGRATE_AT_START=false`), a Service and a
  PodDisruptionBudget;
* a Secret with only the keys it holds (`pont_shared.config.SECRETS`, its broker URI, its database
  URL, and for the web its client secret at the identity provider), every value a placeholder;
* for the gateway and the web, the `pont-identity-provider` ConfigMap (`PONT_OIDC_*`; empty: not in use);
* for a service with a database: the migration Job (`pont-migrate`) and its own Secret with the
  schema owner's URL, which the running service never sees;
* a KEDA ScaledObject: a consumer scales on the depth of each queue it consumes (its event queues and
  `rpc-<service>`), the HTTP front ends (gateway, web) on CPU.

    .venv/bin/python infra/k8s/generate.py                  # writes infra/k8s/base/
    .venv/bin/python infra/k8s/generate.py --check          # exit 1 if infra/k8s/base/ is not current
    .venv/bin/python infra/k8s/generate.py --agencies school:1,health:x --out my-base

Run from the repository root (the plan lists the folders under services/).
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from pathlib import Path

import yaml
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.rpc import Rpc

from pont_shared.config import DEFAULT_AGENCIES, SECRETS, Settings, safe_name
from pont_shared.messaging.consumer import queue_name_of
from pont_shared.messaging.dependencies import UnitOfWorkProvider
from pont_shared.operations.stack import planned

BASE = Path("infra/k8s/base")
IMAGE = "pont/services:local"  # the image of infra/Dockerfile; an overlay sets the real one (`images:`)
RUN_AS = 10001  # the `pont` user of infra/Dockerfile
PLACEHOLDER = "REPLACE-ME"  # shorter than 32 bytes: with PONT_ENV=production a service refuses to start with it
BROKER_HOST = "pont-rabbitmq:5672"  # the RabbitMQ Cluster Operator's Service for a RabbitmqCluster named pont-rabbitmq
DATABASE_HOST = "pgbouncer:6432"  # PgBouncer (transaction mode) in front of the managed PostgreSQL
KEDA_AUTH = "pont-rabbitmq-queue-depth"
HTTP_FRONT_ENDS = {"gateway", "web"}  # serve people and agency systems: a preStop pause, and scaled on CPU
IDENTITY_PROVIDER = "pont-identity-provider"  # the ConfigMap of the PONT_OIDC_* settings; empty = not in use
IDENTITY_PROVIDER_SETTINGS = {  # README "Sign in" and "Tokens": the gateway verifies, the web signs people in
    "PONT_OIDC_ISSUER": "", "PONT_OIDC_JWKS_URL": "", "PONT_OIDC_AUDIENCE": "",
    "PONT_OIDC_ROLES_CLAIM": "roles", "PONT_OIDC_ORG_CLAIM": "org",
    "PONT_OIDC_CLIENT_ID": "", "PONT_OIDC_REDIRECT_URL": "", "PONT_OIDC_SCOPE": "openid profile",
}
GRACE_SECONDS = {"transitions": 120}  # handles a whole cohort in one call (make bench-transitions): longer
DEFAULT_GRACE_SECONDS = 60
RESOURCES = {  # requests (and a memory limit; no CPU limit: throttling stalls eventlet's hub and heartbeats)
    "transitions": ("250m", "512Mi", "1Gi"),
    "gateway": ("250m", "256Mi", "768Mi"),  # a CTF import body is up to 20 MB
}
DEFAULT_RESOURCES = ("100m", "256Mi", "512Mi")
SCALING = {  # (min, max) replicas; an organisation's agency_link: AGENCY_SCALING
    "gateway": (2, 10), "web": (2, 6), "consent": (2, 10), "referrals": (2, 10), "bookings": (2, 6),
    "transitions": (2, 6),
}
AGENCY_SCALING = (1, 4)
QUEUE_DEPTH_PER_REPLICA = "50"  # ready + unacknowledged messages one replica is expected to work through


def dns_name(service: str) -> str:
    """A service name as a Kubernetes object name (DNS-1123: no underscores)."""
    return safe_name(service).replace("_", "-").lower()


def env_key(service: str) -> str:
    return safe_name(service).upper()


def database_name(service: str, org: str | None) -> str:
    """The service's own database, as docker-compose.yml and pont_shared.operations.roles name them."""
    return f"agency_{safe_name(org)}" if org else safe_name(service)


def service_class(spec: str):
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def queues(name: str, cls) -> list[str]:
    """The queues the process consumes from: one per event handler, and nameko's `rpc-<name>`."""
    found, rpc = set(), False
    for attribute in dir(cls):
        for entrypoint in getattr(getattr(cls, attribute), ENTRYPOINT_EXTENSIONS_ATTR, ()):
            if getattr(entrypoint, "event_model", None) is not None:
                found.add(queue_name_of(name, attribute))
            elif isinstance(entrypoint, Rpc):
                rpc = True
    return sorted(found) + ([f"rpc-{name}"] if rpc else [])


def has_database(cls) -> bool:
    return any(isinstance(getattr(cls, attribute), UnitOfWorkProvider) for attribute in dir(cls))


def labels(name: str, component: str) -> dict:
    return {"app.kubernetes.io/name": "pont", "app.kubernetes.io/instance": dns_name(name),
            "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "pont"}


def pod_security() -> dict:
    return {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def secret(name: str, owner: str, component: str, values: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": labels(owner, component)},
            "type": "Opaque", "stringData": values}


# what one service alone holds besides SECRETS, its broker URI and its database URL
OWN_SECRETS = {
    # the pages' client secret at the identity provider (remove it for a public, PKCE-only client)
    "web": {"PONT_OIDC_CLIENT_SECRET": PLACEHOLDER},
    # where family notices are sent, with the server's password (empty: notices are kept, unsent)
    "consent": {"PONT_SMTP_URL": f"smtps://pont:{PLACEHOLDER}@smtp.example.invalid:465"},
}


def service_secret(name: str, org: str | None, database: bool) -> dict:
    """The keys this process holds: SECRETS' (every process's, and those named for it), its broker
    user's URI and its database URL as the runtime role. Placeholders all."""
    values = {variable: PLACEHOLDER for variable, _attribute, _default, holders in SECRETS
              if holders is None or name in holders}
    values[f"PONT_{env_key(name)}_AMQP_URI"] = f"amqp://{name}:{PLACEHOLDER}@{BROKER_HOST}/"
    values.update(OWN_SECRETS.get(name, {}))
    if database:
        db = database_name(name, org)
        values[f"PONT_{env_key(name)}_DATABASE_URL"] = \
            f"postgresql+psycopg2://{db}_app:{PLACEHOLDER}@{DATABASE_HOST}/{db}"
    return secret(dns_name(name), name, "service", values)


def migrate_secret(name: str, org: str | None) -> dict:
    db = database_name(name, org)
    return secret(f"{dns_name(name)}-migrate", name, "migrate", {
        f"PONT_{env_key(name)}_MIGRATE_DATABASE_URL": f"postgresql+psycopg2://{db}_owner:{PLACEHOLDER}@{DATABASE_HOST}/{db}"})


def deployment(name: str, args: list[str], port: int, scaled_by_keda: bool, env: dict[str, str]) -> dict:
    dns = dns_name(name)
    cpu, memory, memory_limit = RESOURCES.get(name, DEFAULT_RESOURCES)
    env = [{"name": key, "value": value} for key, value in env.items()]
    container = {
        "name": "service",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "pont_shared.operations.runner", *args],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": "pont-config"}},
                    *([{"configMapRef": {"name": IDENTITY_PROVIDER}}] if name in HTTP_FRONT_ENDS else []),
                    {"secretRef": {"name": dns}}],
        **({"env": env} if env else {}),
        # /health: the process answers (a hung one is restarted); /ready: broker and database reachable and
        # its consumers attached (not ready: out of the Service's endpoints, never restarted for it)
        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "initialDelaySeconds": 10,
                          "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5,
                           "timeoutSeconds": 3, "failureThreshold": 3},
        "startupProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2,
                         "timeoutSeconds": 3, "failureThreshold": 60},
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if name in HTTP_FRONT_ENDS:  # let endpoint removal reach the load balancers before SIGTERM stops the server
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    spec = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": labels(name, "service")},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {
                "labels": {**labels(name, "service"), "pont/service": name},
                "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                                "prometheus.io/path": "/metrics"},
            },
            "spec": {
                # SIGTERM: the runner stops taking work, finishes and acknowledges what is in flight
                "terminationGracePeriodSeconds": GRACE_SECONDS.get(name, DEFAULT_GRACE_SECONDS),
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,  # no <SERVICE>_PORT variables: Pont reads PONT_<SERVICE>_PORT
                "securityContext": pod_security(),
                # replicas on different nodes where there are some: one node lost is not the whole service
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                               "whenUnsatisfiable": "ScheduleAnyway",
                                               "labelSelector": {"matchLabels": labels(name, "service")}}],
                "containers": [container],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            },
        },
    }
    if not scaled_by_keda:
        spec["replicas"] = 2
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": dns, "labels": labels(name, "service")}, "spec": spec}


def service(name: str, port: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": dns_name(name), "labels": labels(name, "service")},
            "spec": {"type": "ClusterIP", "selector": labels(name, "service"),
                     "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]}}


def disruption_budget(name: str) -> dict:
    # maxUnavailable, not minAvailable: a drain goes on one pod at a time even with one replica
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": dns_name(name), "labels": labels(name, "service")},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name, "service")}}}


def migration_job(name: str, spec: str) -> dict:
    dns = dns_name(name)
    command = ["pont-migrate", spec] + (["--name", name] if name != service_class(spec).name else [])
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{dns}-migrate", "labels": labels(name, "migrate"),
                     # Argo CD runs it before the Deployments; plain kubectl: infra/README.md
                     "annotations": {"argocd.argoproj.io/hook": "PreSync",
                                     "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation"}},
        "spec": {
            "backoffLimit": 6,
            "activeDeadlineSeconds": 1800,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels(name, "migrate")},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "containers": [{
                        "name": "migrate",
                        "image": IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        # under a transaction-scoped advisory lock: replicas of this Job cannot race
                        "command": command,
                        "envFrom": [{"configMapRef": {"name": "pont-config"}},
                                    {"secretRef": {"name": f"{dns}-migrate"}}],
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                        "securityContext": container_security(),
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def scaled_object(name: str, consumed: list[str], org: str | None) -> dict:
    low, high = AGENCY_SCALING if org else SCALING.get(name, (2, 6))
    if consumed:
        triggers = [{"type": "rabbitmq",
                     "metadata": {"protocol": "http", "mode": "QueueLength", "value": QUEUE_DEPTH_PER_REPLICA,
                                  "queueName": queue},
                     "authenticationRef": {"name": KEDA_AUTH}} for queue in consumed]
    else:  # an HTTP front end: no queue of its own
        triggers = [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}]
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": dns_name(name), "labels": labels(name, "service")},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": dns_name(name)},
                     "minReplicaCount": low, "maxReplicaCount": high,
                     "pollingInterval": 15, "cooldownPeriod": 300, "triggers": triggers}}


def shared(settings: Settings) -> dict[str, list[dict]]:
    config = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "pont-config", "labels": labels("pont", "config")},
              "data": {"PONT_ENV": "production", "PONT_AGENCIES": ",".join(settings.agencies),
                       "PONT_BIND_HOST": "0.0.0.0", "PONT_LOG_LEVEL": "INFO",
                       # pont-migrate Jobs migrate; no replica migrates as it starts
                       "PONT_MIGRATE_AT_START": "false"}}
    identity_provider = {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": IDENTITY_PROVIDER, "labels": labels("pont", "config")},
                         "data": IDENTITY_PROVIDER_SETTINGS}
    keda_secret = secret(KEDA_AUTH, "pont", "autoscaling", {
        # RabbitMQ's management API as a user tagged `monitoring` (reads queue depths, nothing else); %2F: vhost /
        "host": f"http://pont-keda:{PLACEHOLDER}@{BROKER_HOST.split(':')[0]}:15672/%2F"})
    auth = {"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": KEDA_AUTH, "labels": labels("pont", "autoscaling")},
            "spec": {"secretTargetRef": [{"parameter": "host", "name": KEDA_AUTH, "key": "host"}]}}
    return {"config.yaml": [config, identity_provider], "keda-rabbitmq.yaml": [keda_secret, auth]}


def render(agencies: str = DEFAULT_AGENCIES) -> dict[str, list[dict]]:
    """{file name: documents} of the base, kustomization.yaml included."""
    settings = Settings.from_env("tools", {"PONT_AGENCIES": agencies})
    # the base has each process's configured port, whatever PONT_*_PORT this shell exports for a local stack
    exported = {key: os.environ.pop(key) for key in list(os.environ)
                if key.startswith("PONT_") and key.endswith("_PORT")}
    try:
        plan = planned(settings)
    finally:
        os.environ.update(exported)
    ports = {name: port for name, _args, port in plan}
    files = shared(settings)
    for name, args, port in plan:
        cls = service_class(args[0])
        org = args[args.index("--org") + 1] if "--org" in args else None
        database = has_database(cls)
        consumed = queues(name, cls)
        # the pages reach the public API through the gateway's Service
        env = {"PONT_GATEWAY_URL": f"http://{dns_name('gateway')}:{ports['gateway']}"} if name == "web" else {}
        documents = [service_secret(name, org, database), deployment(name, args, port, True, env),
                     service(name, port), disruption_budget(name), scaled_object(name, consumed, org)]
        if database:
            documents += [migrate_secret(name, org), migration_job(name, args[0])]
        files[f"{dns_name(name)}.yaml"] = documents
    files["kustomization.yaml"] = [{
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": sorted(files)}]
    return files


HEADER = "# Generated by infra/k8s/generate.py from the services and PONT_AGENCIES; do not edit.\n"


def dump(documents: list[dict]) -> str:
    return HEADER + "---\n".join(yaml.safe_dump(doc, sort_keys=False, width=120) for doc in documents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BASE)
    parser.add_argument("--agencies", default=DEFAULT_AGENCIES, help="the organisations (as PONT_AGENCIES)")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing")
    args = parser.parse_args(argv)
    wanted = {file: dump(documents) for file, documents in render(args.agencies).items()}
    if args.check:
        present = {path.name for path in args.out.glob("*.yaml")}
        problems = [f"{args.out / file}: not generated by infra/k8s/generate.py (remove it)"
                    for file in sorted(present - set(wanted))]
        for file, text in wanted.items():
            path = args.out / file
            current = path.read_text() if path.exists() else ""
            if current != text:
                diff = "".join(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                    str(path), "generated", n=1))
                problems.append(f"{path}: not current\n{diff[:2000]}")
        if problems:
            print("\n".join(problems), "\nregenerate: .venv/bin/python infra/k8s/generate.py", file=sys.stderr)
            return 1
        print(f"{args.out}: {len(wanted)} files, as generated")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.out.glob("*.yaml"):
        if path.name not in wanted:
            path.unlink()
    for file, text in wanted.items():
        (args.out / file).write_text(text)
    print(f"wrote {len(wanted)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
