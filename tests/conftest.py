"""Shared fixtures (the helpers they use are in tests/support). Root tests run only inside network namespaces they
create, and remove them afterwards."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import IS_ROOT, REPO, SHIPPED_PLUGINS, Netns, NetnsFactory
from support.paths import PLUGIN_ROOTS

# The plugins' packages (`import bridge.plugin`, `host_local.store`): their source roots, from plugins.toml.
sys.path[1:1] = [str(root) for root in PLUGIN_ROOTS if str(root) not in sys.path]

__all__ = ["REPO"]   # still imported from here by tests/e2e/overlay_cluster.py (support.REPO is the same)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if ("root" in item.keywords or "e2e" in item.keywords) and not IS_ROOT:
            item.add_marker(skip_root)


@pytest.fixture
def netns_factory() -> Iterator[Callable[[str], Netns]]:
    """make("host") -> a fresh namespace with lo up; every one made is deleted at teardown, even on failure."""
    make = NetnsFactory()
    try:
        yield make
    finally:
        make.close()


@pytest.fixture
def host_ns(netns_factory: Callable[[str], Netns]) -> Netns:
    """A throwaway "node": plugins run inside it, so the machine's own network is never touched."""
    return netns_factory("host")


@pytest.fixture
def dist_bin() -> Path:
    """The built executables (make build); e2e tests are skipped with a clear reason when missing.
    PYCNI_E2E_BIN=/usr/lib/cni runs the same tests against the Go reference plugins."""
    path = Path(os.environ.get("PYCNI_E2E_BIN", REPO / "dist" / "cni-bin"))
    if not all((path / name).exists() for name in SHIPPED_PLUGINS):
        pytest.skip("dist/cni-bin not built: run `make build`")
    return path


@pytest.fixture
def cnitool() -> Path:
    path = REPO / "dist" / "cnitool"
    if not path.exists():
        pytest.skip("dist/cnitool not built: run `make driver`")
    return path
