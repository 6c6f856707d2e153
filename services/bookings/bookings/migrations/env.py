from bookings.orm import metadata
from pont_shared.operations.migrations import run_env

run_env(metadata)
