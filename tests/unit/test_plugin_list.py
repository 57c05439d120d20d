"""plugins.toml is the one list of shipped plugins: every reader agrees with it, and every entry is complete."""
from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib

import pytest

from support import REPO, SHIPPED_PLUGINS
from support.paths import PLUGIN_LIST

# The in-process delegate tables the plugins declare in their own code (module, attribute).
DECLARED = {"bridge": ("bridge.host", "IN_PROCESS"), "overlay": ("overlay_cni.delegate", "IN_PROCESS")}


@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_every_listed_plugin_has_its_entry_point_and_one_package(plugin: str) -> None:
    source = REPO / str(PLUGIN_LIST[plugin]["source"])
    assert (source / "main.py").is_file()
    assert len([d for d in source.iterdir() if (d / "__init__.py").is_file()]) == 1


def test_every_plugin_folder_is_listed() -> None:
    folders = {str(path.parent.relative_to(REPO)) for path in (REPO / "cni").glob("*/main.py")}
    assert folders == {str(entry["source"]) for entry in PLUGIN_LIST.values()}


@pytest.mark.parametrize("plugin", sorted(DECLARED))
def test_the_build_bundles_what_a_plugin_runs_in_process(plugin: str) -> None:
    """plugins.toml's `in_process` (what PyInstaller bundles) is what the code runs in-process, transitively."""
    module, attribute = DECLARED[plugin]
    declared = set(getattr(importlib.import_module(module), attribute).values())
    for name, entry in PLUGIN_LIST.items():   # a bundled delegate's own in-process delegates come along
        if f"{entry['source'].split('/')[-1].replace('-', '_')}.plugin" in declared:
            declared |= set(PLUGIN_LIST[name].get("in_process", []))
    assert set(PLUGIN_LIST[plugin].get("in_process", [])) == declared
    for name in SHIPPED_PLUGINS:
        if name not in DECLARED:
            assert not PLUGIN_LIST[name].get("in_process"), name


def test_the_makefile_and_mypy_read_the_list() -> None:
    names = subprocess.run([sys.executable, str(REPO / "scripts" / "plugins.py"), "names"], capture_output=True,
                           text=True, check=True).stdout.split()
    roots = subprocess.run([sys.executable, str(REPO / "scripts" / "plugins.py"), "roots"], capture_output=True,
                           text=True, check=True).stdout.strip().split(":")
    assert names == list(SHIPPED_PLUGINS)
    assert roots == [str(entry["source"]) for entry in PLUGIN_LIST.values()]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    # No plugin is named in pyproject.toml: pytest's and mypy's paths come from the list, ruff's src is a glob.
    assert not any(path.startswith("cni/") for path in pyproject["tool"]["pytest"]["ini_options"]["pythonpath"])
    assert not any(path.startswith("cni/") for path in pyproject["tool"]["mypy"]["mypy_path"])
    assert "cni/*" in pyproject["tool"]["ruff"]["src"]
