"""Root conftest: the shared fixtures (pont_shared.testing.fixtures) are loaded by pytest.ini."""

import os

# The suite runs Pont with its development secrets, so says so: outside PONT_ENV=development a
# service refuses them (pont_shared.config.Settings.check_secrets). Processes the tests start inherit it.
os.environ["PONT_ENV"] = "development"
