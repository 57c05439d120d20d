"""Shared fixtures. Root tests run only inside network namespaces they create, and remove them afterwards."""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
# The executables `make build` ships in dist/cni-bin (tests that cover "every plugin" read this).
SHIPPED_PLUGINS = ("bridge", "host-local", "portmap", "loopback", "overlay")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if ("root" in item.keywords or "e2e" in item.keywords) and not IS_ROOT:
            item.add_marker(skip_root)


class Netns:
    """A named network namespace (/run/netns/<name>) that the test owns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    def run(self, *argv: str, check: bool = True, input: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """Run argv inside this namespace."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check, input=input, env=env,
                              capture_output=True, timeout=timeout)

    def sh(self, script: str, check: bool = True) -> str:
        return self.run("sh", "-c", script, check=check).stdout.decode()

    def __repr__(self) -> str:
        return f"Netns({self.name})"


@pytest.fixture
def netns_factory() -> Iterator[Callable[[str], Netns]]:
    """make("host") -> a fresh namespace with lo up; every one made is deleted at teardown, even on failure."""
    made: list[Netns] = []

    def make(role: str = "ns") -> Netns:
        ns = Netns(f"pycni-{role}-{uuid.uuid4().hex[:8]}")
        subprocess.run(["ip", "netns", "add", ns.name], check=True)
        made.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    yield make
    for ns in reversed(made):
        subprocess.run(["ip", "netns", "delete", ns.name], check=False, capture_output=True)


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


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
