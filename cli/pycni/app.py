"""The `pycni` command: argparse front end. Every command's errors are UserErrors: one sentence on stderr naming
the argument and value, exit status 1 (2 for a usage error, as argparse does)."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from . import cleanup, facts, networks, ports
from .chain import Chain, ConfList, Runtime
from .errors import UserError
from .runs import RunOptions, Runs, alive
from .table import render

DEFAULTS = {"conf_dir": "/etc/cni/net.d", "cni_path": None, "cache_dir": "/var/lib/cni", "state_dir": "/run/pycni/cli"}


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.conf_dir = Path(args.conf_dir)
        cni_path = args.cni_path or os.environ.get("CNI_PATH") or "/opt/cni/bin"
        self.cni_path = [p for p in cni_path.split(":") if p]
        self.cache_dir = Path(args.cache_dir)
        self.chain = Chain(self.cni_path, self.cache_dir)
        self.runs = Runs(self.chain, self.conf_dir, Path(args.state_dir))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _netns_path(text: str) -> str:
    return os.path.abspath(text) if "/" in text else f"/run/netns/{text}"


def default_container_id(netns: str) -> str:
    """The container ID tests/driver's cnitool derives from a netns path, so both name an attachment alike."""
    return "cni-" + hashlib.sha512(netns.encode()).hexdigest()[:16]


# --- network ----------------------------------------------------------------------------------------------------
def network_create(ctx: Context, args: argparse.Namespace) -> int:
    opts = networks.CreateOptions(name=args.name, subnets=args.subnet or [], ip_ranges=args.ip_range or [],
                                  gateways=args.gateway or [], bridge=args.bridge, internal=args.internal,
                                  mtu=args.mtu, ipam_dir=args.ipam_dir, isolate=args.isolate, driver=args.driver,
                                  subnet_file=args.subnet_file)
    conflist = networks.build(opts, networks.all_networks(ctx.conf_dir))
    path = networks.write(ctx.conf_dir, args.name, conflist)
    if args.json:
        _print_json({"name": args.name, "file": str(path), "config": conflist})
    else:
        print(f"{args.name}  {path}")
    return 0


def _summary(ctx: Context, conflist: ConfList) -> dict[str, Any]:
    return {"name": conflist.name, "driver": networks.driver(conflist), "file": str(conflist.path),
            "cniVersion": conflist.cni_version, "subnets": [str(n) for n in networks.subnets(conflist)],
            "gateways": networks.gateways(conflist), "bridge": networks.bridge_name(conflist),
            "attached": len(facts.attachments(conflist, ctx.cache_dir, live=False))}


def network_ls(ctx: Context, args: argparse.Namespace) -> int:
    rows = [_summary(ctx, c) for c in sorted(networks.all_networks(ctx.conf_dir), key=lambda c: c.name)]
    if args.json:
        _print_json(rows)
        return 0
    print(render(["NAME", "DRIVER", "SUBNETS", "GATEWAYS", "ATTACHED"],
                 [[r["name"], r["driver"], ",".join(r["subnets"]) or "-", ",".join(r["gateways"]) or "-",
                   str(r["attached"])] for r in rows]), end="")
    return 0


def network_inspect(ctx: Context, args: argparse.Namespace) -> int:
    out = []
    for name in args.names:
        conflist = networks.load(ctx.conf_dir, name)
        info = _summary(ctx, conflist)
        info["config"] = json.loads(conflist.raw)
        info["ipamDir"] = str(networks.ipam_dir(conflist) or "")
        info["attachments"] = facts.attachments(conflist, ctx.cache_dir)
        info["attached"] = len(info["attachments"])
        out.append(info)
    _print_json(out)
    return 0


def network_rm(ctx: Context, args: argparse.Namespace) -> int:
    conflist = networks.load(ctx.conf_dir, args.name)
    atts = facts.attachments(conflist, ctx.cache_dir, live=False)
    if atts and not args.force:
        names = ", ".join(f"{a['containerId']}/{a['ifname']}" + ("" if "libcni cache" in a["sources"] else
                          f" (only in host-local: {', '.join(a['addresses'])})") for a in atts)
        raise UserError(f"network {args.name!r} has {len(atts)} attachment(s): {names}; detach them or use --force "
                        "(DEL of the cached ones, GC of the rest)")
    for att in atts:
        if "libcni cache" in att["sources"]:
            rt = ctx.chain.runtime_from_cache(conflist.name, Runtime(att["containerId"], att["netns"], att["ifname"]))
            ctx.chain.delete(conflist, rt)
    if any("libcni cache" not in a["sources"] for a in atts):
        # no netns is known for these, so no DEL: the chain's GC with no valid attachment releases them
        lines, ok = ctx.chain.gc(conflist, [])
        veths = [v for _, v in cleanup.orphan_veths([conflist], facts.cache_entries(ctx.cache_dir))]
        lines += cleanup.delete_veths(veths)
        left = facts.host_local_files(conflist)
        if not ok or left:
            held = ", ".join(f"{cid}/{ifname} ({', '.join(a)})" for (cid, ifname), a in sorted(left.items()))
            raise UserError(f"network {args.name!r} kept: the chain's GC did not release {held or 'everything'} ("
                            + "; ".join(lines) + f"); remove the files in {networks.ipam_dir(conflist)} by hand")
    assert conflist.path is not None
    conflist.path.unlink()
    if args.purge:
        bridge = networks.bridge_name(conflist)
        if bridge:
            from pyroute2 import IPRoute
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname=bridge)
                if index:
                    ipr.link("del", index=index[0])
            # the firewall's isolation rules name the bridge: its GC removes those of bridges that are gone
            lines, ok = ctx.chain.gc(conflist, [])
            if not ok:
                print(f"pycni: {args.name}: GC after removing {bridge}: " + "; ".join(lines), file=sys.stderr)
        directory = networks.ipam_dir(conflist)
        if directory is not None and directory.is_dir():
            for child in directory.iterdir():
                child.unlink()
            directory.rmdir()
    print(args.name)
    return 0


# --- attach / detach --------------------------------------------------------------------------------------------
def _runtime(args: argparse.Namespace, caps: dict[str, Any] | None = None) -> Runtime:
    netns = _netns_path(args.netns)
    return Runtime(args.id or default_container_id(netns), netns, args.ifname, capability_args=caps or {})


def attach(ctx: Context, args: argparse.Namespace) -> int:
    conflist = networks.load(ctx.conf_dir, args.network)
    netns = _netns_path(args.netns)
    if not os.path.exists(netns):
        raise UserError(f"netns {args.netns!r} not found ({netns} does not exist)")
    opts = RunOptions(name=None, networks=[args.network], ports=[ports.publish(p) for p in args.publish or []],
                      ips=args.ip or [], macs=[ports.qualified(m, "--mac") for m in args.mac or []], command=["-"])
    ctx.runs._check(opts)
    caps = ctx.runs._capabilities(0, conflist, opts)
    rt = _runtime(args, caps)
    if ctx.chain.cached(conflist.name, rt) is not None:
        raise UserError(f"{rt.container_id}/{rt.ifname} is already attached to {conflist.name!r} "
                        f"({ctx.chain.cache_file(conflist.name, rt)})")
    result = ctx.chain.add_or_undo(conflist, rt)
    if args.json:
        _print_json(result)
    else:
        addresses = ", ".join(ip.get("address", "?") for ip in result.get("ips") or []) or "no address"
        print(f"{conflist.name}: {rt.container_id} {rt.ifname} {addresses}")
    return 0


def detach(ctx: Context, args: argparse.Namespace) -> int:
    rt = _runtime(args)
    entry = ctx.chain.cached(args.network, rt)
    try:
        conflist = networks.load(ctx.conf_dir, args.network)
    except UserError:
        if entry is None:
            raise
        conflist = ConfList.from_bytes(facts.decoded_config(entry) or b"")
    if entry is None and not args.force:
        raise UserError(f"{rt.container_id}/{rt.ifname} is not attached to {args.network!r} (no libcni cache entry "
                        f"{ctx.chain.cache_file(args.network, rt)}); --force runs the DEL anyway")
    ctx.chain.delete(conflist, ctx.chain.runtime_from_cache(conflist.name, rt))
    print(f"{conflist.name}: {rt.container_id} {rt.ifname} detached")
    return 0


def check(ctx: Context, args: argparse.Namespace) -> int:
    conflist = networks.load(ctx.conf_dir, args.network)
    rt = _runtime(args)
    ctx.chain.check(conflist, ctx.chain.runtime_from_cache(conflist.name, rt))
    print(f"{conflist.name}: {rt.container_id} {rt.ifname} ok")
    return 0


# --- run / ps / gc / doctor -------------------------------------------------------------------------------------
def run(ctx: Context, args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    opts = RunOptions(name=args.name, networks=args.network or [],
                      ports=[ports.publish(p) for p in args.publish or []], ips=args.ip or [],
                      macs=[ports.qualified(m, "--mac") for m in args.mac or []], command=command)
    return ctx.runs.run(opts)


def ps(ctx: Context, args: argparse.Namespace) -> int:
    states = ctx.runs.states()
    for state in states:
        state["running"] = alive(state)
    if args.json:
        _print_json(states)
        return 0
    rows = []
    for s in states:
        nets = ",".join(f"{a['network']}:{a['ifname']}={'/'.join(a.get('addresses') or []) or '-'}"
                        for a in s.get("attachments", []) if a["ifname"] != "lo") or s.get("network", "-")
        rows.append([s["name"], str(s.get("pid", "")), "running" if s["running"] else "dead", s["netns"], nets,
                     " ".join(s.get("command", []))])
    print(render(["NAME", "PID", "STATUS", "NETNS", "NETWORKS", "COMMAND"], rows), end="")
    return 0


def gc(ctx: Context, args: argparse.Namespace) -> int:
    targets = [networks.load(ctx.conf_dir, args.network)] if args.network else networks.all_networks(ctx.conf_dir)
    valid_specs = cleanup.parse_valid(args.valid) if args.valid is not None else None
    lines = [] if args.network else ctx.runs.gc()
    failed = any(not line.endswith(": cleaned") for line in lines)
    owned = {s["containerId"] for s in ctx.runs.states()}       # runs still running (or whose teardown failed)
    plan = cleanup.plan(ctx.cache_dir, owned, args.network, valid_specs)
    for entry, why in plan.stale:
        rt = Runtime(entry["containerId"], facts.cached_netns(entry), entry["ifName"], entry.get("cniArgs") or [],
                     entry.get("capabilityArgs") or {})
        what = f"attachment {entry['networkName']} {rt.container_id} {rt.ifname}"
        try:
            conflist = ConfList.from_bytes(facts.decoded_config(entry) or b"")
            ctx.chain.delete(conflist, rt)
            lines.append(f"{what}: detached ({why})")
        except UserError as e:
            failed = True
            lines.append(f"{what}: {e}")
    before = cleanup.leaks(targets, ctx.cache_dir)
    for conflist in targets:
        done, ok = ctx.chain.gc(conflist, plan.valid.get(conflist.name, []))
        failed |= not ok
        lines.append(f"network {conflist.name}: " + "; ".join(done))
        veths = [v for c, v in cleanup.orphan_veths([conflist], facts.cache_entries(ctx.cache_dir))]
        errors = cleanup.delete_veths(veths)
        failed |= bool(errors)
        lines += [f"network {conflist.name}: {e}" for e in errors]
    after = cleanup.leaks(targets, ctx.cache_dir)
    names = {c.name for c in targets}
    lines += [f"removed: {leak.text}" for leak in before if leak not in after]
    left = [leak for leak in after if leak.network in names]
    lines += [f"left: {leak.text}" for leak in left]
    print("\n".join(lines) if lines else "nothing to clean")
    return 1 if failed or left else 0


def doctor(ctx: Context, args: argparse.Namespace) -> int:
    findings = []
    for state in ctx.runs.states():
        if not alive(state):
            findings.append(f"`pycni run --name {state['name']}` (pid {state.get('pid')}) ended without cleaning up: "
                            f"{state['netns']} and {len(state.get('attachments', []))} attachment(s) remain. "
                            "Fix: pycni gc")
    owned = {s["containerId"] for s in ctx.runs.states()}
    for entry, why in cleanup.plan(ctx.cache_dir, owned, None, None).stale:
        findings.append(f"{entry['networkName']}: container {entry['containerId']} ({entry['ifName']}) is cached "
                        f"but {why}, so its address and rules leak. Fix: pycni gc {entry['networkName']}")
    conflists = networks.all_networks(ctx.conf_dir)
    findings += [f"{leak.text}. Fix: {leak.fix}" for leak in cleanup.leaks(conflists, ctx.cache_dir)]
    for directory in ctx.cni_path:
        if not os.path.isdir(directory):
            findings.append(f"--cni-path entry {directory!r} does not exist. Fix: make install, or point --cni-path "
                            "at the plugins")
    for conflist in conflists:
        for plugin in conflist.plugins:
            try:
                ctx.chain.find(plugin["type"])
            except UserError:
                findings.append(f"network {conflist.name!r} needs plugin {plugin['type']!r}, which is not in "
                                f"--cni-path {':'.join(ctx.cni_path)}. Fix: make install (or add it to CNI_PATH)")
    print("\n".join(findings) if findings else "no problems found")
    return 1 if findings else 0


# --- the parser -------------------------------------------------------------------------------------------------
def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    kw: dict[str, Any] = {"default": default} if suppress else {}
    parser.add_argument("--conf-dir", help="network configs (default /etc/cni/net.d)", **kw)
    parser.add_argument("--cni-path", help="plugin directories, ':'-separated (default $CNI_PATH or /opt/cni/bin)",
                        **kw)
    parser.add_argument("--cache-dir", help="libcni's cache dir; results in <cache-dir>/results (default "
                        "/var/lib/cni)", **kw)
    parser.add_argument("--state-dir", help="state of running `pycni run`s (default /run/pycni/cli)", **kw)


def _endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("netns", metavar="NETNS", help="a netns path, or a name in /run/netns")
    p.add_argument("--id", help="container ID (default cni-<16 hex of sha512(netns path)>, as tests/driver's cnitool)")
    p.add_argument("--ifname", default="eth0", help="interface in the netns (default eth0)")


def _addressing(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--publish", action="append", metavar="[NETWORK=][HOSTIP:]HOSTPORT:PORT[/PROTO]",
                   help="publish a port on the node (portmap) to the container's address on NETWORK (default: the "
                        "first --network); repeatable")
    p.add_argument("--ip", action="append", metavar="ADDR",
                   help="request this address (host-local) on the network whose subnet holds it; repeatable")
    p.add_argument("--mac", action="append", metavar="[NETWORK=]MAC",
                   help="the MAC of the interface on NETWORK (default: the first --network); one per network")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pycni", description="Container networks for people, over the CNI plugins.")
    _globals(top, suppress=False)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(parent: Any, name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        _globals(p, suppress=True)
        p.set_defaults(func=func)
        return p

    net = sub.add_parser("network", help="create, list, inspect and remove networks")
    nsub = net.add_subparsers(dest="network_command", required=True, metavar="COMMAND")
    p = leaf(nsub, "create", network_create, "write <conf-dir>/NAME.conflist (bridge + host-local + portmap)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--subnet", action="append", metavar="CIDR", help="a subnet (repeat for IPv6 or more)")
    p.add_argument("--ip-range", action="append", metavar="CIDR", help="allocate only from this part of its subnet")
    p.add_argument("--gateway", action="append", metavar="IP", help="the gateway of the subnet holding it")
    p.add_argument("--driver", default="bridge",
                   help="bridge (default), or overlay: the node's share of pycni-overlayd's cluster network")
    p.add_argument("--subnet-file", metavar="FILE",
                   help="overlay: pycni-overlayd's subnet file (default /run/pycni/subnet.env)")
    p.add_argument("--bridge", metavar="IFNAME", help="bridge device (default pycni-NAME)")
    p.add_argument("--isolate", action="store_true",
                   help="drop traffic between this network and every other isolated one (firewall plugin, "
                        "ingressPolicy same-bridge); a container attached to both still reaches both")
    p.add_argument("--internal", action="store_true", help="no masquerade, no default route")
    p.add_argument("--mtu", type=int, metavar="N")
    p.add_argument("--ipam-dir", metavar="DIR", help="host-local's dataDir (default /var/lib/cni/networks)")
    p.add_argument("--json", action="store_true")
    p = leaf(nsub, "ls", network_ls, "list networks: NAME DRIVER SUBNETS GATEWAYS ATTACHED")
    p.add_argument("--json", action="store_true")
    p = leaf(nsub, "inspect", network_inspect, "a network's config and attachments, as JSON")
    p.add_argument("names", nargs="+", metavar="NAME")
    p = leaf(nsub, "rm", network_rm, "remove a network's conflist (refused while attachments exist)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--force", action="store_true",
                   help="detach every attachment first (DEL; GC for those only host-local knows)")
    p.add_argument("--purge", action="store_true", help="also remove host-local's directory and the bridge")

    p = leaf(sub, "attach", attach, "run NETWORK's plugin chain ADD for NETNS (libcni's way, result cached)")
    _endpoint(p)
    _addressing(p)
    p.add_argument("--json", action="store_true", help="print the chain's result")
    p = leaf(sub, "detach", detach, "run NETWORK's plugin chain DEL for NETNS")
    _endpoint(p)
    p.add_argument("--force", action="store_true", help="run DEL even without a cache entry")
    p = leaf(sub, "check", check, "run NETWORK's plugin chain CHECK for NETNS")
    _endpoint(p)

    p = leaf(sub, "run", run, "run CMD in a new netns attached to networks; everything is removed when it ends")
    p.add_argument("--name", metavar="N")
    p.add_argument("--network", action="append", metavar="NAME|none|host|container:N")
    _addressing(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    p = leaf(sub, "ps", ps, "list what `pycni run` started")
    p.add_argument("--json", action="store_true")
    p = leaf(sub, "gc", gc, "clean up after SIGKILLed runs and containers deleted without DEL: DEL of stale "
             "cache entries, then each network's plugin GC (cni.dev/valid-attachments)")
    p.add_argument("network", nargs="?", metavar="NETWORK")
    p.add_argument("--valid", action="append", metavar="CONTAINERID[/IFNAME]",
                   help="keep only these attachments (and those of running `pycni run`s); repeatable")
    leaf(sub, "doctor", doctor, "explain what gc would clean, and broken set-up; changes nothing")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for key, value in DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    try:
        return int(args.func(Context(args), args))
    except UserError as e:
        print(f"pycni: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
