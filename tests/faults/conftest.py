"""The fault suite: each test injects one fault on the real local Slurm and asserts that
nothing was lost. The fixtures are the integration suite's (the real cluster, a home)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import cluster_env, flow_home  # noqa: F401 - fixtures


def pytest_collection_modifyitems(items):
    for item in items:
        if "faults" in str(item.fspath):
            item.add_marker(pytest.mark.slurm)
            item.add_marker(pytest.mark.container)
