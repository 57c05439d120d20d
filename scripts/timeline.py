#!/usr/bin/env python3
"""Where the time of one chain ADD and DEL goes: a per-phase timeline (docs/benchmarks.md, "Where the time goes").

Runs, in throwaway namespaces (a "node" and a "pod", removed at the end, also on failure), the full chain of
`make bench` row 1 with each plugin exec'd directly, as libcni would: bridge (isGateway, ipMasq, host-local
IPAM) ADD, portmap ADD with bridge's result as prevResult, then portmap DEL and bridge DEL. The plugins write
their phase marks (common/timeline.py) to one file through PYCNI_TIMELINE; this tool adds the spawn and exit of
each process, measured by its parent, and prints each phase's start (ms since the spawn) and length. Medians over
--iterations runs, after one warm-up. With --go-bin, the Go plugins run the same chain for the totals (they have
no marks).

Usage: timeline.py [--cni-bin dist/cni-bin] [--go-bin /usr/lib/cni] [--iterations 11] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run_plugin(binary: Path, command: str, conf: dict[str, Any], *, netns: str, container: str,
               marks: Path | None, cni_path: Path) -> tuple[float, float, bytes]:
    env = {"PATH": PATH, "CNI_COMMAND": command, "CNI_CONTAINERID": container, "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_PATH": str(cni_path)}
    if marks is not None:
        env["PYCNI_TIMELINE"] = str(marks)
    started = time.time()
    done = subprocess.run([str(binary)], input=json.dumps(conf).encode(), env=env, capture_output=True,
                          timeout=120)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"{binary.name} {command} failed ({done.returncode}): {done.stdout!r} {done.stderr!r}")
    return started, ended, done.stdout


def chain(bin_dir: Path, work: Path, pod_netns: str, n: int, marks: Path | None) -> list[tuple[str, float, float]]:
    """One ADD and DEL of the chain; (step, spawn, exit) per plugin process."""
    bridge = {"cniVersion": "1.0.0", "name": "tl-chain", "type": "bridge", "bridge": "tlbr0", "isGateway": True,
              "ipMasq": True, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.250.0.0/16"}]],
                                       "dataDir": str(work / "ipam"), "routes": [{"dst": "0.0.0.0/0"}]}}
    portmap = {"cniVersion": "1.0.0", "name": "tl-chain", "type": "portmap",
               "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}}
    steps = []

    def step(plugin: str, command: str, conf: dict[str, Any]) -> bytes:
        start, end, out = run_plugin(bin_dir / plugin, command, conf, netns=pod_netns, container=f"tl-{n}",
                                     marks=marks, cni_path=bin_dir)
        steps.append((f"{plugin} {command}", start, end))
        return out

    added = step("bridge", "ADD", bridge)
    step("portmap", "ADD", {**portmap, "prevResult": json.loads(added)})
    step("portmap", "DEL", portmap)
    step("bridge", "DEL", bridge)
    return steps


def phases(steps: list[tuple[str, float, float]], marks: list[tuple[float, int, str]]) -> list[tuple[str, float]]:
    """(label, ms since the step's spawn) of every mark inside each step, then its exit."""
    out = []
    for step, start, end in steps:
        out.append((f"{step}: spawned", 0.0))
        out += [(f"{step}: {phase}", (at - start) * 1000) for at, _pid, phase in marks if start <= at <= end]
        out.append((f"{step}: exited", (end - start) * 1000))
    return out


def read_marks(path: Path) -> list[tuple[float, int, str]]:
    found = []
    for line in path.read_text().splitlines():
        at, pid, phase = line.split(" ", 2)
        found.append((float(at), int(pid), phase))
    return found


def inside(args: argparse.Namespace) -> None:
    """Runs in the node namespace: the iterations, then the table."""
    work = Path(args.work)
    ours: list[list[tuple[str, float]]] = []
    go_totals: list[dict[str, float]] = []
    for i in range(args.iterations + 1):
        marks = work / f"marks-{i}"
        steps = chain(Path(args.cni_bin), work, args.pod, i, marks)
        if i > 0:
            ours.append(phases(steps, read_marks(marks)))
        if args.go_bin:
            steps = chain(Path(args.go_bin), work, args.pod, 1000 + i, None)
            if i > 0:
                go_totals.append({step: (end - start) * 1000 for step, start, end in steps})
    labels = [label for label, _ in ours[0]]
    if any([label for label, _ in run] != labels for run in ours):
        raise SystemExit("the phases differ between runs; cannot take medians")
    table: list[dict[str, Any]] = []
    previous = 0.0
    for k, label in enumerate(labels):
        at = statistics.median(run[k][1] for run in ours)
        table.append({"phase": label, "at_ms": round(at, 2), "took_ms": round(at - previous, 2)})
        previous = 0.0 if label.endswith(": exited") else at
    go = {step: round(statistics.median(t[step] for t in go_totals), 2) for step in go_totals[0]} if go_totals else {}
    print(f"pycni ({args.cni_bin}), median of {len(ours)} runs; ms since the process was spawned, and since the "
          "previous mark:")
    for entry in table:
        took = "" if entry["phase"].endswith(": spawned") else f"{entry['took_ms']:7.1f}"
        print(f"  {entry['at_ms']:7.1f} {took:>7}  {entry['phase']}")
    if go:
        print(f"Go ({args.go_bin}), median of {len(go_totals)} runs, spawn to exit:")
        for step, took_ms in go.items():
            print(f"  {took_ms:7.1f}  {step}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pycni": table, "go": go}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cni-bin", default="dist/cni-bin")
    parser.add_argument("--go-bin", default="")
    parser.add_argument("--iterations", type=int, default=11)
    parser.add_argument("--json", default="", help="also write the medians to this file")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--pod", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args)
        return
    tag = uuid.uuid4().hex[:8]
    node, pod = f"pycni-tl-node-{tag}", f"pycni-tl-pod-{tag}"
    with tempfile.TemporaryDirectory(prefix="pycni-timeline-") as work:
        try:
            for name in (node, pod):
                subprocess.run(["ip", "netns", "add", name], check=True)
            subprocess.run(["ip", "netns", "exec", node, "ip", "link", "set", "lo", "up"], check=True)
            argv = [sys.executable, os.path.abspath(__file__), "--inside", "--work", work, "--pod",
                    f"/run/netns/{pod}", "--cni-bin", os.path.abspath(args.cni_bin), "--iterations",
                    str(args.iterations)] + (["--go-bin", os.path.abspath(args.go_bin)] if args.go_bin else []) \
                + (["--json", os.path.abspath(args.json)] if args.json else [])
            sys.exit(subprocess.run(["ip", "netns", "exec", node, *argv]).returncode)
        finally:
            for name in (node, pod):
                subprocess.run(["ip", "netns", "del", name], stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
