"""Operations: running a service (runner, stack), migrations, health endpoints, dead letters."""
