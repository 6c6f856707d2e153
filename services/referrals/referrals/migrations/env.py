from pont_shared.operations.migrations import run_env
from referrals.orm import metadata

run_env(metadata)
