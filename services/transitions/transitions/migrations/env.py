from pont_shared.operations.migrations import run_env
from transitions.orm import metadata

run_env(metadata)
