"""Shared pytest configuration: root-only tests skip, with the reason, for other users."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(
        reason="needs root (loop devices, mounts, namespaces): run `make test` as root"
    )
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
