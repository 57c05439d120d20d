"""`make install` puts every shipped plugin and their shared runtime into the target, and they run from there."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support import REPO, SHIPPED_PLUGINS, cni_env, ok, run

pytestmark = pytest.mark.e2e


def test_make_install_puts_every_plugin_into_the_target(dist_bin: Path, tmp_path: Path) -> None:
    if dist_bin.resolve() != (REPO / "dist" / "cni-bin").resolve():
        pytest.skip("PYCNI_E2E_BIN points elsewhere: `make install` installs dist/cni-bin")
    done = subprocess.run(["make", "-s", "install", f"DESTDIR={tmp_path}", "CNI_BIN_DIR=/opt/cni/bin"], cwd=REPO,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    target = tmp_path / "opt" / "cni" / "bin"
    assert sorted(os.listdir(target)) == sorted([".pycni", *SHIPPED_PLUGINS])
    for plugin in SHIPPED_PLUGINS:
        assert "1.1.0" in ok(run([target / plugin], cni_env("VERSION"), timeout=30))["supportedVersions"], plugin
