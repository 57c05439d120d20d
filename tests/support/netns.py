"""Throwaway network namespaces: a node ("host") for the plugins to run in, pods for them to act on. Every one is
the test's own (/run/netns/pycni-<role>-<random>) and is deleted afterwards, also after a failure; the machine's
own network is never touched."""
from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator


class Netns:
    """A named network namespace (/run/netns/<name>) that the test owns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = f"/run/netns/{name}"

    @classmethod
    def create(cls, name: str) -> Netns:
        """A new namespace, its lo down (as a runtime hands a pod's over)."""
        subprocess.run(["ip", "netns", "add", name], check=True)
        return cls(name)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)

    def run(self, *argv: str, check: bool = True, input: bytes | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """Run argv inside this namespace (`ip netns exec`, which also shows the namespace's own /sys)."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check, input=input, env=env,
                              capture_output=True, timeout=timeout)

    def sh(self, script: str, check: bool = True) -> str:
        return self.run("sh", "-c", script, check=check).stdout.decode()

    def __repr__(self) -> str:
        return f"Netns({self.name})"


def unique_name(role: str) -> str:
    return f"pycni-{role}-{uuid.uuid4().hex[:8]}"


class NetnsFactory:
    """make("host") -> a fresh namespace with lo up; close() deletes every one made, last first."""

    def __init__(self) -> None:
        self.made: list[Netns] = []

    def __call__(self, role: str = "ns") -> Netns:
        ns = Netns.create(unique_name(role))
        self.made.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def close(self) -> None:
        for ns in reversed(self.made):
            ns.delete()
        self.made.clear()


@contextlib.contextmanager
def throwaway_netns(name: str) -> Iterator[Netns]:
    """A new namespace at /run/netns/<name> (lo down), deleted when the block ends."""
    ns = Netns.create(name)
    try:
        yield ns
    finally:
        ns.delete()
