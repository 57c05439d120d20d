"""Cost per ADD as allocations accumulate (the 2,000th against the first; see docs/benchmarks.md).

    python scripts/host-local-growth.py [--count 2000] [--plugin PATH] [--in-process]

Runs `count` sequential ADDs into a /20 in a temp dataDir, each as its own process (as a runtime runs it) or,
with --in-process, through skel.dispatch (only the part that grows with the allocations). Prints the median
time of the first and the last 100 and their ratio. --plugin runs another binary (e.g. /usr/lib/cni/host-local).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join(REPO, "cni", "host-local")     # the plugin's source root


def conf(data_dir: str) -> bytes:
    return json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
                       "ipam": {"type": "host-local", "dataDir": data_dir,
                                "ranges": [[{"subnet": "10.128.0.0/20"}]]}}).encode()


def env_for(i: int) -> dict[str, str]:
    return {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"{i:064x}", "CNI_NETNS": "/run/netns/bench",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin", "PATH": os.environ.get("PATH", "")}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_processes(argv: list[str], stdin: bytes, count: int) -> tuple[list[float], list[float]]:
    """Wall time and CPU time (user + system, steadier on a busy machine) of each ADD process."""
    times, cpu = [], []
    for i in range(count):
        start, start_cpu = time.perf_counter(), children_cpu()
        done = subprocess.run(argv, input=stdin, env=env_for(i), capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        cpu.append(children_cpu() - start_cpu)
        if done.returncode != 0:
            sys.exit(f"ADD #{i + 1} failed: {done.stdout.decode()}{done.stderr.decode()}")
    return times, cpu


def timed_dispatch(stdin: bytes, count: int) -> tuple[list[float], list[float]]:
    sys.path[:0] = [ROOT, REPO]
    from common.skel import dispatch
    from host_local.plugin import PLUGIN
    gc.disable()        # as main.py runs
    times, cpu = [], []
    for i in range(count):
        start, start_cpu = time.perf_counter(), time.process_time()
        outcome = dispatch(PLUGIN, env_for(i), lambda: stdin)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if outcome.status != 0:
            sys.exit(f"ADD #{i + 1} failed: {outcome.stdout}")
    return times, cpu


def report(label: str, values: list[float], count: int) -> str:
    first, last = statistics.median(values[:100]), statistics.median(values[-100:])
    return (f"{label} #1-100 median {first * 1e3:.2f} ms, #{count - 99}-{count} median {last * 1e3:.2f} ms, "
            f"ratio {last / first:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--plugin", default="")
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        stdin = conf(data_dir)
        if args.in_process:
            times, cpu = timed_dispatch(stdin, args.count)
        else:
            argv = [args.plugin] if args.plugin else [sys.executable, "-I", os.path.join(ROOT, "main.py")]
            times, cpu = timed_processes(argv, stdin, args.count)
    label = f"{args.plugin or 'pycni'}{' (in-process)' if args.in_process else ''}"
    print(f"{label}: wall: {report('ADD', times, args.count)}")
    print(f"{label}: cpu:  {report('ADD', cpu, args.count)}")


if __name__ == "__main__":
    main()
