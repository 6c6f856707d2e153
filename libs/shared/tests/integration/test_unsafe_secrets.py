"""A real runner process outside development refuses the development secrets, naming the variable."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
SHARED_DIR = Path(__file__).resolve().parents[2]


def run_probe(**env: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("PONT_ENV", "PONT_JWT_SECRET", "PONT_CHILD_REF_SECRET", "PONT_LEDGER_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "pont_shared.operations.runner", "tests.integration.probe:PingConsumer",
         "--name", "refusal_probe", "--port", "0"],
        env={**inherited, "PYTHONPATH": str(SHARED_DIR), **env}, capture_output=True, text=True, timeout=60)


def test_a_production_runner_with_the_development_jwt_secret_exits_non_zero_naming_it():
    done = run_probe(PONT_ENV="production", PONT_CHILD_REF_SECRET="c" * 32, PONT_LEDGER_KEY="l" * 32)

    assert done.returncode == 2
    assert "refusing to start: PONT_JWT_SECRET is the development default" in done.stderr


def test_a_runner_without_pont_env_refuses_a_short_secret_and_never_prints_it():
    done = run_probe(PONT_JWT_SECRET="too-short-to-sign-tokens", PONT_CHILD_REF_SECRET="c" * 32,
                     PONT_LEDGER_KEY="l" * 32)

    assert done.returncode == 2
    assert "PONT_JWT_SECRET is shorter than 32 bytes" in done.stderr
    assert "too-short-to-sign-tokens" not in done.stderr + done.stdout


def test_make_start_outside_development_refuses_before_starting_anything(tmp_path):
    inherited = {k: v for k, v in os.environ.items() if k not in ("PONT_ENV", "PONT_JWT_SECRET")}
    done = subprocess.run([sys.executable, "-m", "pont_shared.operations.stack", "start"],
                          env={**inherited, "PONT_ENV": "production", "PONT_RUN_DIR": str(tmp_path / "run")},
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    assert "Not starting Pont: PONT_JWT_SECRET is the development default" in done.stderr
    assert not (tmp_path / "run").exists()  # no supervisord was configured, let alone started
