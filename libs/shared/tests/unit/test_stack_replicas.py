"""`PONT_REPLICAS`: the processes `make start` runs for N copies of each service."""
import pytest

from pont_shared.operations.stack import replica_settings, replicated, supervisor_config

PLAN = [("agency_link_health_x", ["agency_link.service:AgencyLinkService", "--name", "agency_link_health_x",
                                  "--org", "health:x", "--port", "8110"], 8110),
        ("referrals", ["referrals.service:ReferralsService", "--port", "8102"], 8102)]


def test_one_copy_is_the_plan_as_it_was():
    assert replicated(PLAN, 1, 1000) == [(name, name, args, port) for name, args, port in PLAN]


def test_each_further_copy_runs_under_the_services_name_on_its_own_port():
    processes = replicated(PLAN, 3, 1000)
    assert [(process, service, port) for process, service, _args, port in processes] == [
        ("agency_link_health_x", "agency_link_health_x", 8110),
        ("agency_link_health_x-2", "agency_link_health_x", 9110),
        ("agency_link_health_x-3", "agency_link_health_x", 10110),
        ("referrals", "referrals", 8102), ("referrals-2", "referrals", 9102), ("referrals-3", "referrals", 10102)]
    second_link = processes[1][2]
    # the same instance name (so the same queues and database), only the port differs
    assert second_link[:-1] == PLAN[0][1][:-1] and second_link[-1] == "9110"


def test_every_copy_is_a_supervisord_program_with_the_services_broker_user():
    config = supervisor_config(replicated(PLAN, 2, 1000),
                               {"PONT_REFERRALS_AMQP_URI": "amqp://referrals:pw@127.0.0.1:5672/"})
    programs = [line for line in config.splitlines() if line.startswith("[program:")]
    assert programs == ["[program:agency_link_health_x]", "[program:agency_link_health_x-2]",
                        "[program:referrals]", "[program:referrals-2]"]
    assert config.count('environment=PONT_REFERRALS_AMQP_URI="amqp://referrals:pw@127.0.0.1:5672/"') == 2
    assert "--port 9102" in config and "referrals-2.log" in config


@pytest.mark.parametrize("value", ["0", "-1"])
def test_fewer_than_one_copy_is_refused(monkeypatch, value):
    monkeypatch.setenv("PONT_REPLICAS", value)
    with pytest.raises(ValueError, match="PONT_REPLICAS"):
        replica_settings()
