"""Where things are: the repository, the shipped plugins and their source, the Go reference plugins, the PATH the
plugins run with, and PATHs made for a test (a tool missing, a tool faked, links to chosen plugins)."""
from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
# The executables `make build` ships in dist/cni-bin (tests that cover "every plugin" read this): plugins.toml's.
PLUGIN_LIST = tomllib.loads((REPO / "plugins.toml").read_text())
SHIPPED_PLUGINS = tuple(PLUGIN_LIST)
# Their source roots (cni/<plugin>, holding main.py and the package), put on sys.path by tests/conftest.py.
PLUGIN_ROOTS = tuple(REPO / str(entry["source"]) for entry in PLUGIN_LIST.values())
# Debian's containernetworking-plugins (1.1.1): the reference the side-by-side tests run.
GO_BIN = Path("/usr/lib/cni")
# The PATH a plugin gets (a runtime's PATH, whatever pytest itself runs with).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def requires_go(*plugins: str) -> pytest.MarkDecorator:
    """Skip unless Debian's Go plugins `plugins` are in /usr/lib/cni."""
    missing = [name for name in plugins if not os.access(GO_BIN / name, os.X_OK)]
    return pytest.mark.skipif(bool(missing), reason=f"the Go reference plugins {', '.join(missing)} are not in "
                              f"{GO_BIN} (apt-get install containernetworking-plugins)")


def source_argv(plugin: str) -> list[str]:
    """A plugin from the source tree: its main.py in an isolated interpreter (main.py sets up sys.path itself)."""
    return [sys.executable, "-I", str(REPO / "cni" / plugin / "main.py")]


def plugin_argv(plugin: str, bin_dir: Path | None) -> list[str]:
    """The plugin's argv: the executable in `bin_dir` (dist/cni-bin, /usr/lib/cni), or from the source tree."""
    return [str(bin_dir / plugin)] if bin_dir is not None else source_argv(plugin)


def tool_dir(root: Path, *, drop: tuple[str, ...] = (), fakes: dict[str, str] | None = None) -> str:
    """A PATH of one directory: symlinks to every program of SYSTEM_PATH except `drop` (and except the names in
    `fakes`, which become shell scripts with the given body)."""
    root.mkdir(parents=True, exist_ok=True)
    fakes = fakes or {}
    for directory in SYSTEM_PATH.split(":"):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = root / name
            if name in drop or name in fakes or target.exists() or target.is_symlink():
                continue
            target.symlink_to(os.path.join(directory, name))
    for name, body in fakes.items():
        (root / name).write_text("#!/bin/sh\n" + body + "\n")
        (root / name).chmod(0o755)
    return str(root)


def link_dir(path: Path, links: dict[str, Path]) -> Path:
    """A CNI_PATH of symlinks, name -> target (the PyInstaller bootloader resolves its real path, so a link to
    dist/cni-bin/bridge still finds dist/cni-bin/.pycni)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        if not os.path.lexists(path / name):
            os.symlink(target, path / name)
    return path
