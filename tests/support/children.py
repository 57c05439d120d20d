"""The child processes of this process, running or unreaped (zombies count: a child nobody waited for leaked)."""
from __future__ import annotations

import os


def children() -> set[int]:
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue    # exited meanwhile
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry))
    return found


def tools(directory: os.PathLike[str] | str, **scripts: str) -> str:
    """Shell scripts named after each key (`iptables="sleep 30"`, `_` for `-`) in `directory`; returns a PATH
    that finds them first, then the system's tools."""
    for name, body in scripts.items():
        path = os.path.join(directory, name.replace("_", "-"))
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\n{body}\n")
        os.chmod(path, 0o755)
    return f"{directory}:/usr/sbin:/usr/bin:/sbin:/bin"
