"""Running programs (common.exec): input, output, status, environment, PATH, timeouts, signals, concurrency."""
from __future__ import annotations

import time

import pytest

from common.errors import CniError
from common.exec import child_environ, run, run_all


def test_exec_names_a_missing_program():
    with pytest.raises(CniError) as info:
        run(["/nonexistent/iptables-restore"], needed_by="ipMasqBackend iptables")
    assert info.value.msg == "program '/nonexistent/iptables-restore' not found (needed by ipMasqBackend iptables)"


def test_run_passes_input_and_collects_output_and_status():
    done = run(["sh", "-c", "cat; echo err >&2; exit 3"], input=b"x" * 300000)
    assert (done.status, len(done.stdout), done.stderr) == (3, 300000, b"err\n")


def test_run_uses_the_given_environment():
    assert run(["sh", "-c", "echo $ONLY"], env={"ONLY": "me", "PATH": "/usr/bin:/bin"}).stdout == b"me\n"


def test_run_searches_a_default_path_only_when_path_is_unset():
    assert run(["true"], env={}).status == 0
    with pytest.raises(CniError) as info:
        run(["iptables-restore"], env={"PATH": "/nonexistent"}, needed_by="ipMasq")
    assert info.value.msg == "program 'iptables-restore' not found (needed by ipMasq)"


def test_run_times_out_with_try_again():
    with pytest.raises(CniError) as info:
        run(["sleep", "5"], timeout=0.2)
    assert info.value.code == 11 and "did not finish within 0.2 s" in info.value.msg


def test_run_reports_a_signal_as_negative_status():
    assert run(["sh", "-c", "kill -9 $$"]).status == -9


def test_run_all_runs_commands_concurrently_and_keeps_order():
    started = time.monotonic()
    done = run_all([["sh", "-c", "sleep 0.3; echo a"], ["sh", "-c", "sleep 0.3; echo b"], ["false"]])
    assert [d.stdout for d in done] == [b"a\n", b"b\n", b""] and done[2].status == 1
    assert time.monotonic() - started < 0.55


def test_run_all_with_a_missing_program_starts_nothing_left_running():
    with pytest.raises(CniError):
        run_all([["sleep", "5"], ["/nonexistent/tool"]])


def test_child_environ_takes_back_what_the_bootloader_put_in_front() -> None:
    ours = {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/cni/bin/.pycni"}
    assert child_environ(ours, frozen=True) == {"PATH": "/usr/bin"}
    given = {"LD_LIBRARY_PATH": "/opt/cni/bin/.pycni:/site", "LD_LIBRARY_PATH_ORIG": "/site", "X": "1"}
    assert child_environ(given, frozen=True) == {"LD_LIBRARY_PATH": "/site", "X": "1"}
    assert child_environ(given, frozen=False) == given      # from the source tree: nothing was added
    assert child_environ({"PATH": "/bin"}, frozen=True) == {"PATH": "/bin"}
