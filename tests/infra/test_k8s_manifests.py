"""The Kubernetes base (infra/k8s): generated from the services and PONT_AGENCIES, committed as
generated, and valid; and the validator rejects what would break a deployment.

`bash infra/check.sh` also renders the committed base with `kubectl kustomize` and validates that.
"""
from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path

import pytest

from pont_shared.config import SECRETS

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"pont_k8s_{name}", ROOT / "infra" / "k8s" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _module("generate")
validate = _module("validate")


@pytest.fixture(scope="module")
def documents():
    cwd = os.getcwd()
    os.chdir(ROOT)  # the plan lists the folders under services/
    try:
        files = generate.render()
    finally:
        os.chdir(cwd)
    return [doc for name, docs in files.items() if name != "kustomization.yaml" for doc in docs]


def find(documents, kind, name):
    [doc] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(documents, name="consent"):
    return find(documents, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def test_the_committed_base_is_what_the_generator_makes(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert generate.main(["--check"]) == 0, capsys.readouterr().err


def test_the_generated_manifests_are_valid(documents):
    assert validate.problems(documents) == []


def test_a_deployment_scaled_object_and_migration_per_process(documents):
    deployments = {d["metadata"]["name"] for d in documents if d["kind"] == "Deployment"}
    assert deployments == {"gateway", "web", "consent", "referrals", "bookings", "transitions",
                           "agency-link-school-6612001", "agency-link-school-6614002",
                           "agency-link-health-cardiff-vale", "agency-link-social-care-cardiff",
                           "agency-link-youth-work-cardiff"}
    jobs = {d["metadata"]["name"] for d in documents if d["kind"] == "Job"}
    assert jobs == {f"{name}-migrate" for name in deployments - {"gateway", "web"}}
    job = find(documents, "Job", "agency-link-health-cardiff-vale-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "pont-migrate", "agency_link.service:AgencyLinkService", "--name", "agency_link_health_cardiff_vale"]
    assert find(documents, "ConfigMap", "pont-config")["data"]["PONT_MIGRATE_AT_START"] == "false"


def test_each_consumer_scales_on_each_queue_it_consumes(documents):
    queues = {t["metadata"]["queueName"] for t in find(documents, "ScaledObject", "referrals")["spec"]["triggers"]}
    assert queues == {"referrals.on_agency_decided", "referrals.on_consent_granted", "rpc-referrals"}
    agency = find(documents, "ScaledObject", "agency-link-school-6612001")["spec"]["triggers"]
    assert {"agency_link_school_6612001.on_disclosure", "rpc-agency_link_school_6612001"} <= \
        {t["metadata"]["queueName"] for t in agency}
    assert all(t["type"] == "rabbitmq" for t in agency)
    assert [t["type"] for t in find(documents, "ScaledObject", "gateway")["spec"]["triggers"]] == ["cpu"]


def test_each_secret_holds_only_the_keys_its_service_holds(documents):
    for name, service in (("gateway", "gateway"), ("consent", "consent"),
                          ("agency-link-youth-work-cardiff", "agency_link_youth_work_cardiff")):
        keys = set(find(documents, "Secret", name)["stringData"])
        held = {variable for variable, _attr, _default, holders in SECRETS if holders is None or service in holders}
        assert held <= keys
        own = set(generate.OWN_SECRETS.get(service, {}))
        assert own <= keys
        assert {k for k in keys - held - own if not k.endswith(("_AMQP_URI", "_DATABASE_URL"))} == set()
        assert not any(k.endswith("_MIGRATE_DATABASE_URL") for k in keys)  # the owner's URL: the Job's alone
    assert "PONT_CALLER_SIGNING_KEY" in find(documents, "Secret", "gateway")["stringData"]
    assert "PONT_CALLER_SIGNING_KEY" not in find(documents, "Secret", "consent")["stringData"]
    assert set(find(documents, "Secret", "consent-migrate")["stringData"]) == {"PONT_CONSENT_MIGRATE_DATABASE_URL"}


def test_the_gateway_and_the_web_take_the_identity_provider_settings_which_are_off_until_filled_in(documents):
    from pont_shared.config import Settings

    provider = find(documents, "ConfigMap", "pont-identity-provider")["data"]
    for name in ("gateway", "web", "consent"):
        sources = [s["configMapRef"]["name"] for s in container(documents, name)["envFrom"] if "configMapRef" in s]
        assert ("pont-identity-provider" in sources) == (name in ("gateway", "web")), name
    assert "PONT_OIDC_CLIENT_SECRET" in find(documents, "Secret", "web")["stringData"]
    assert "PONT_OIDC_CLIENT_SECRET" not in find(documents, "Secret", "gateway")["stringData"]

    off = Settings.from_env("web", dict(provider))
    filled = {**provider, "PONT_OIDC_ISSUER": "https://idp.example", "PONT_OIDC_AUDIENCE": "pont",
              "PONT_OIDC_JWKS_URL": "https://idp.example/jwks", "PONT_OIDC_CLIENT_ID": "pont-web",
              "PONT_OIDC_REDIRECT_URL": "https://pont.example/sign-in/callback"}
    on = Settings.from_env("web", filled)

    assert (off.oidc, off.oidc_client) == (None, None)
    assert (on.oidc.audience, on.oidc.roles_claim, on.oidc_client.client_id, on.oidc_client.scope) == (
        "pont", "roles", "pont-web", "openid profile")


def broken(documents, change):
    copied = copy.deepcopy(documents)
    change(copied)
    return validate.problems(copied)


def test_a_container_without_an_image_is_rejected(documents):
    found = broken(documents, lambda docs: container(docs).pop("image"))
    assert found == ["Deployment/consent: container 'service' has no image"]


def test_a_probe_on_the_wrong_port_is_rejected(documents):
    def wrong_port(docs):
        container(docs)["readinessProbe"]["httpGet"]["port"] = 8102
    found = broken(documents, wrong_port)
    assert found == ["Deployment/consent container 'service': readinessProbe port 8102 is not a port of the container"]

    def port_moved(docs):  # the container's port no longer the one the runner is told to listen on
        container(docs)["ports"][0]["containerPort"] = 9101
    assert "Deployment/consent container 'service': probes reach port [9101], the service listens on 8101" \
        in broken(documents, port_moved)


def test_liveness_must_be_health_and_readiness_ready(documents):
    def swapped(docs):
        container(docs)["livenessProbe"]["httpGet"]["path"] = "/ready"
    assert broken(documents, swapped) == [
        "Deployment/consent container 'service': livenessProbe path is '/ready', not '/health'"]


def test_an_unknown_field_is_rejected_by_the_kubernetes_schema(documents):
    def typo(docs):
        container(docs)["readinessProbe"]["httpGet"]["pth"] = "/ready"
    found = broken(documents, typo)
    assert len(found) == 2 and all("'pth' was unexpected" in problem for problem in found)  # 1.29 and 1.37


def test_a_root_container_and_a_short_grace_period_are_rejected(documents):
    def unsafe(docs):
        pod = find(docs, "Deployment", "referrals")["spec"]["template"]["spec"]
        pod["securityContext"]["runAsUser"] = 0
        pod["terminationGracePeriodSeconds"] = 5
    assert broken(documents, unsafe) == [
        "Deployment/referrals: pod does not run as a non-root user (runAsNonRoot, runAsUser)",
        "Deployment/referrals: terminationGracePeriodSeconds must be set, at least 30"]


def test_services_must_not_migrate_at_start(documents):
    def migrating(docs):
        find(docs, "ConfigMap", "pont-config")["data"]["PONT_MIGRATE_AT_START"] = "true"
    assert len(broken(documents, migrating)) == 11


def test_a_real_value_in_a_secret_is_rejected(documents):
    def leaked(docs):
        find(docs, "Secret", "gateway")["stringData"]["PONT_JWT_SECRET"] = "a-real-looking-secret-of-32-bytes!"
    assert broken(documents, leaked) == [
        "Secret/gateway: PONT_JWT_SECRET is not a placeholder (REPLACE-ME): no real secret in a manifest"]


def test_keda_objects_are_checked_against_their_schema_and_targets(documents):
    def no_queue(docs):
        find(docs, "ScaledObject", "bookings")["spec"]["triggers"][0]["metadata"].pop("queueName")
    assert broken(documents, no_queue) == [
        "ScaledObject/bookings: spec.triggers.0.metadata: 'queueName' is a required property"]

    def misspelt(docs):
        find(docs, "ScaledObject", "bookings")["spec"]["triggers"][0]["metadata"]["vhostname"] = "/"
    assert broken(documents, misspelt) == [
        "ScaledObject/bookings: spec.triggers.0.metadata: Additional properties are not allowed "
        "('vhostname' was unexpected)"]

    def wrong_target(docs):
        find(docs, "ScaledObject", "bookings")["spec"]["scaleTargetRef"]["name"] = "booking"
    assert broken(documents, wrong_target) == [
        "Deployment/bookings: no ScaledObject scales it",
        "ScaledObject/bookings: scales Deployment 'booking', which does not exist"]


def test_missing_companions_are_rejected(documents):
    def without(kind, name):
        return lambda docs: docs.remove(find(docs, kind, name))
    assert broken(documents, without("PodDisruptionBudget", "web")) == ["Deployment/web: no PodDisruptionBudget"]
    assert broken(documents, without("Job", "transitions-migrate")) == [
        "Deployment/transitions: has a database but no migration Job"]
    assert "Deployment/gateway: Secret 'gateway' does not exist" in broken(documents, without("Secret", "gateway"))


def test_a_kind_without_a_schema_is_rejected(documents):
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "pont"},
               "spec": {"selector": {"matchLabels": {"app.kubernetes.io/part-of": "pont"}}}}
    assert broken(documents, lambda docs: docs.append(monitor)) == [
        "ServiceMonitor/pont: Kubernetes 1.29.0 has no ServiceMonitor in monitoring.coreos.com/v1",
        "ServiceMonitor/pont: Kubernetes 1.37.0 has no ServiceMonitor in monitoring.coreos.com/v1"]
