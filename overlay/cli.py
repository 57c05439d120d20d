"""pycni-overlayd's command line: flags, logging, signals, healthz, and the exit status.

    0  stopped by SIGTERM/SIGINT (data plane and lease left in place unless --release-on-exit)
    1  etcd unreachable at start-up (--start-timeout), or the data plane could not be set up
    2  configuration error: bad flags, a malformed <prefix>/config, no free subnet; nothing was touched
"""
from __future__ import annotations

import argparse
import http.server
import logging
import signal
import sys
import threading
import time
from typing import Any

from .agent import Agent, Options
from .etcd import Etcd, EtcdError, EtcdUnavailable
from .leases import NoFreeSubnet
from .netconfig import ConfigError

log = logging.getLogger("pycni-overlayd")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pycni-overlayd", description="pycni's VXLAN / host-gw overlay agent")
    parser.add_argument("--etcd-endpoints", required=True, help="URL[,URL...] of etcd's client endpoints")
    parser.add_argument("--prefix", default="/pycni/network", help="etcd key prefix (flannel: /coreos.com/network)")
    parser.add_argument("--public-ip", help="this node's underlay address (default: --iface's, or the default route's)")
    parser.add_argument("--iface",
                        help="underlay interface (default: the one holding --public-ip or the default route)")
    parser.add_argument("--subnet-file", default="/run/pycni/subnet.env")
    parser.add_argument("--lease-ttl", type=int, default=86400, help="seconds the subnet lease outlives the agent")
    parser.add_argument("--ip-masq", action="store_true", help="masquerade pod traffic leaving the cluster network")
    parser.add_argument("--healthz-port", type=int, default=0, help="serve GET /healthz (200 once ready); 0: off")
    parser.add_argument("--release-on-exit", action="store_true", help="give the subnet lease back on SIGTERM")
    parser.add_argument("--iptables-forward-rules", action=argparse.BooleanOptionalAction, default=True,
                        help="accept forwarding from/to the cluster network in filter FORWARD (flannel's default)")
    parser.add_argument("--reconcile-interval", type=float, default=60.0, help="full resync period, seconds")
    parser.add_argument("--start-timeout", type=float, default=30.0,
                        help="seconds to wait for etcd at start-up before exiting with status 1")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.lease_ttl < 2:
        parser.error("--lease-ttl must be at least 2 seconds")
    if not 0 <= args.healthz_port <= 65535:
        parser.error("--healthz-port must be 0..65535")
    return args


def serve_healthz(port: int, agent: Agent) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = agent.ready.is_set() and self.path in ("/", "/healthz")
            self.send_response(200 if ok else 503)
            self.end_headers()
            self.wfile.write(b"ok\n" if ok else b"not ready\n")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, name="healthz", daemon=True).start()
    return server


def start_with_retries(agent: Agent, timeout: float) -> None:
    """Only etcd being unreachable is retried; every other error is final."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            agent.start()
            return
        except EtcdUnavailable as exc:
            if time.monotonic() >= deadline or agent.stopping.is_set():
                raise
            log.warning("%s; retrying", exc)
            agent.stopping.wait(1.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s pycni-overlayd %(levelname)s %(message)s")
    options = Options(prefix=args.prefix.rstrip("/"), public_ip=args.public_ip, iface=args.iface,
                      subnet_file=args.subnet_file, lease_ttl=args.lease_ttl, ip_masq=args.ip_masq,
                      reconcile_interval=args.reconcile_interval, release_on_exit=args.release_on_exit,
                      forward_rules=args.iptables_forward_rules)
    from .dataplane import DataPlaneError, Kernel  # pyroute2 only once the flags are good
    kernel = Kernel()
    agent = Agent(options, store=Etcd([url for url in args.etcd_endpoints.split(",") if url]), kernel=kernel)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.stop())
    if args.healthz_port:
        serve_healthz(args.healthz_port, agent)
    try:
        start_with_retries(agent, args.start_timeout)
    except (ConfigError, NoFreeSubnet) as exc:
        log.error("configuration error: %s (nothing changed)", exc)
        return 2
    except EtcdError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except (DataPlaneError, OSError) as exc:
        log.error("cannot set up the data plane: %s", exc)
        return 1
    if agent.stopping.is_set():
        return 0
    agent.run()
    if options.release_on_exit:
        try:
            agent.release()
        except EtcdError as exc:
            log.error("could not release the lease: %s", exc)
    log.info("stopped (data plane left in place)")
    return 0
