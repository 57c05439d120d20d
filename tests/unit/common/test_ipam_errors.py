from __future__ import annotations

import json
import os
import stat

import pytest

from common import ipam
from common.config import base_netconf
from common.errors import CniError, ErrorCollector
from common.exec import Completed, run
from common.skel import Request

CONF = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": {"type": "fake-ipam"}}


def request(tmp_path, conf=CONF) -> Request:
    stdin = json.dumps(conf).encode()
    return Request(command="ADD", container_id="c1", netns="/run/netns/x", ifname="eth0", args="",
                   path=(str(tmp_path),), stdin=stdin, conf=base_netconf(conf),
                   env={"CNI_COMMAND": "ADD", "CNI_PATH": str(tmp_path), "KEEP": "1"})


@pytest.fixture
def fake_ipam(tmp_path):
    binary = tmp_path / "fake-ipam"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


def test_delegate_passes_env_and_stdin_and_parses_result(tmp_path, fake_ipam):
    seen = {}

    def runner(argv, *, input, env, timeout):
        seen.update(argv=argv, input=input, env=env)
        return Completed(0, json.dumps({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}).encode(), b"")

    req = request(tmp_path)
    res = ipam.delegate("DEL", req, runner=runner)
    assert res is None and seen["env"]["CNI_COMMAND"] == "DEL" and seen["env"]["KEEP"] == "1"
    res = ipam.delegate("ADD", req, runner=runner)
    assert seen["argv"] == [str(fake_ipam)] and seen["input"] == req.stdin
    assert [str(i.address) for i in res.ips] == ["10.0.0.2/24"]


def test_delegate_keeps_the_delegates_error_code(tmp_path, fake_ipam):
    def runner(argv, **kwargs):
        return Completed(1, json.dumps({"code": 11, "msg": "locked", "details": "x"}).encode(), b"")

    with pytest.raises(CniError) as info:
        ipam.delegate("ADD", request(tmp_path), runner=runner)
    assert (info.value.code, info.value.msg, info.value.details) == (11, "locked", "x")


def test_delegate_without_json_error_reports_output(tmp_path, fake_ipam):
    def runner(argv, **kwargs):
        return Completed(2, b"", b"segfault")

    with pytest.raises(CniError) as info:
        ipam.delegate("ADD", request(tmp_path), runner=runner)
    assert "IPAM plugin 'fake-ipam' ADD failed (exit 2): segfault" in info.value.msg


def test_missing_ipam_binary_names_type_and_path(tmp_path):
    with pytest.raises(CniError) as info:
        ipam.delegate("ADD", request(tmp_path))
    assert info.value.msg == f"failed to find IPAM plugin 'fake-ipam' in CNI_PATH {tmp_path}"


@pytest.mark.parametrize("name", ["../bin/sh", "a/b", ".."])
def test_ipam_type_cannot_be_a_path(tmp_path, name):
    with pytest.raises(CniError) as info:
        ipam.find_plugin(name, (str(tmp_path),))
    assert info.value.code == 7


def test_real_delegate_process(tmp_path):
    script = tmp_path / "echo-ipam"
    script.write_text('#!/bin/sh\necho \'{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/16"}]}\'\n')
    script.chmod(0o755)
    conf = {**CONF, "ipam": {"type": "echo-ipam"}}
    res = ipam.delegate("ADD", request(tmp_path, conf))
    assert str(res.ips[0].address) == "10.9.0.2/16"


def test_exec_names_a_missing_program():
    with pytest.raises(CniError) as info:
        run(["/nonexistent/iptables-restore"], needed_by="ipMasqBackend iptables")
    assert info.value.msg == "program '/nonexistent/iptables-restore' not found (needed by ipMasqBackend iptables)"


def test_error_collector_runs_every_step():
    errors = ErrorCollector("DEL")
    done = []
    with errors.step("one"):
        raise CniError(11, "busy")
    with errors.step("two"):
        done.append(2)
    with pytest.raises(CniError) as info:
        errors.raise_if_any()
    assert done == [2] and info.value.code == 11 and info.value.msg == "DEL: one: busy"
    with errors.step("three"):
        raise ValueError("bad")
    with pytest.raises(CniError) as info:
        errors.raise_if_any()
    assert info.value.msg == "DEL failed in 2 steps: one: busy; three: ValueError: bad"


def test_error_collector_silent_when_all_good():
    errors = ErrorCollector("GC")
    with errors.step("ok"):
        pass
    errors.raise_if_any()


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
    import time
    from common.exec import run_all
    started = time.monotonic()
    done = run_all([["sh", "-c", "sleep 0.3; echo a"], ["sh", "-c", "sleep 0.3; echo b"], ["false"]])
    assert [d.stdout for d in done] == [b"a\n", b"b\n", b""] and done[2].status == 1
    assert time.monotonic() - started < 0.55


def test_run_all_with_a_missing_program_starts_nothing_left_running():
    from common.exec import run_all
    with pytest.raises(CniError):
        run_all([["sleep", "5"], ["/nonexistent/tool"]])


def test_flock_times_out_with_try_again_naming_what_it_waited_for(tmp_path):
    import fcntl
    import os
    from common import flock
    path = tmp_path / "lock"
    holder = os.open(path, os.O_CREAT | os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    waiter = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(CniError) as info:
            flock.acquire(waiter, timeout=0.05, what=f"the lock {path}")
        assert info.value.code == 11 and info.value.msg == f"timed out after 0.05 s waiting for the lock {path}"
        os.close(holder)
        flock.acquire(waiter, timeout=0.05, what="the lock")
    finally:
        os.close(waiter)


@pytest.mark.parametrize("value, expected", [("", 30.0), ("0", 0.0), ("2.5", 2.5)])
def test_lock_timeout_from_env(value, expected):
    from common import flock
    assert flock.timeout_from_env({"PYCNI_LOCK_TIMEOUT": value}, 30.0) == expected


@pytest.mark.parametrize("value", ["x", "-1", "nan"])
def test_bad_lock_timeout_env_is_code_4(value):
    from common import flock
    with pytest.raises(CniError) as info:
        flock.timeout_from_env({"PYCNI_LOCK_TIMEOUT": value}, 30.0)
    assert info.value.code == 4 and "PYCNI_LOCK_TIMEOUT" in info.value.msg
