"""Root conftest: the shared fixtures (pont_shared.testing.fixtures) are loaded by pytest.ini."""
