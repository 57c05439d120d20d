"""What the built plugins' children see: PyInstaller's bootloader puts the shared runtime (.pycni) on
LD_LIBRARY_PATH for the plugin itself; iptables (and any program a plugin runs) must get the machine's own
library path back (common/exec.py child_environ)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from support import Netns, bridge_conf, cni_env, ok, plugin_argv, run, tool_dir

pytestmark = pytest.mark.e2e


def recording_iptables(tmp_path: Path) -> tuple[str, Path]:
    """A PATH whose iptables and iptables-restore write their LD_LIBRARY_PATH (or "unset") to a file, then run
    the real program."""
    seen = tmp_path / "seen"
    body = (f'echo "${{LD_LIBRARY_PATH-unset}}" >> {seen}\n'
            'exec "$(readlink -f /usr/sbin/iptables)" "$(basename "$0")" "$@"')   # xtables-*-multi APPLET ARGS
    path = tool_dir(tmp_path / "tools", fakes={"iptables": body, "iptables-restore": body})
    return path, seen


@pytest.mark.parametrize("original", [None, "/opt/site-libs"])
def test_iptables_gets_the_library_path_the_plugin_was_given(dist_bin: Path, host_ns: Netns, tmp_path: Path,
                                                               netns_factory: Callable[[str], Netns],
                                                               original: str | None) -> None:
    if not (dist_bin / ".pycni").is_dir():
        pytest.skip("the bootloader's LD_LIBRARY_PATH is pycni's (PYCNI_E2E_BIN names other plugins)")
    pod = netns_factory("pod")
    path, seen = recording_iptables(tmp_path)
    conf = bridge_conf(tmp_path / "data", isGateway=True, ipMasq=True)
    env = cni_env("ADD", cid="env-c1", netns=pod.path, cni_path=dist_bin, path=path, LD_LIBRARY_PATH=original)
    ok(run(plugin_argv("bridge", dist_bin), env, conf, inside=host_ns))
    ok(run(plugin_argv("bridge", dist_bin), {**env, "CNI_COMMAND": "DEL"}, conf, inside=host_ns))
    lines = seen.read_text().splitlines()
    assert lines, "the plugin ran no iptables"
    assert set(lines) == {original or "unset"}
