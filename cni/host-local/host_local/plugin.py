"""host-local's verbs: parse the configuration, lock the network directory once, apply the policy.

Verbs: ADD, DEL, CHECK as the reference; GC and STATUS (spec 1.1.0), which the reference lacks.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Mapping

from common import flock
from common.config import valid_attachments
from common.errors import CniError, Code
from common.skel import Plugin, Request
from common.types import DNS, Result

from . import allocator, config, dns
from .store import DiskStore

KNOWN_CNI_ARGS = ("IP",)
DEFAULT_LOCK_TIMEOUT = 30.0


def load_config(request: Request) -> config.IpamConfig:
    return config.load(request.conf, request.cni_args(KNOWN_CNI_ARGS))


def open_store(conf: config.IpamConfig, env: Mapping[str, str]) -> DiskStore:
    return DiskStore(conf.data_dir, conf.name, lock_timeout=lock_timeout(env))


def lock_timeout(env: Mapping[str, str]) -> float:
    return flock.timeout_from_env(env, DEFAULT_LOCK_TIMEOUT)


def add(request: Request) -> Result:
    conf = load_config(request)
    wanted = allocator.plan_requests(conf.range_sets, conf.requested)
    resolver = dns.read_resolv_conf(conf.resolv_conf) if conf.resolv_conf else DNS()
    with open_store(conf, request.env).session() as session:
        ips = allocator.allocate(session, conf.range_sets, wanted, container_id=request.container_id,
                                 ifname=request.ifname)
    return Result(ips=tuple(ips), routes=conf.routes, dns=resolver)


def delete(request: Request) -> None:
    """Never refuses a config: DEL reads only the dataDir (config.teardown_data_dir)."""
    store = DiskStore(config.teardown_data_dir(request.conf), request.conf.name, lock_timeout=lock_timeout(request.env))
    with store.session() as session:
        allocator.release(session, request.container_id, request.ifname)


def check(request: Request) -> None:
    conf = load_config(request)
    with open_store(conf, request.env).session() as session:
        held = allocator.held_by(session, request.container_id, request.ifname)
    if not held:
        raise CniError(Code.INTERNAL, f"host-local: no address is allocated to container "
                       f"{request.container_id} interface {request.ifname} in network {conf.name} "
                       f"({conf.data_dir})")


def gc(request: Request) -> None:
    valid = valid_attachments(request.conf.node)
    store = DiskStore(config.teardown_data_dir(request.conf), request.conf.name, lock_timeout=lock_timeout(request.env))
    with store.session() as session:
        allocator.collect_garbage(session, valid)


def status(request: Request) -> None:
    conf = load_config(request)
    with open_store(conf, request.env).session() as session:
        full = allocator.exhausted(session, conf.range_sets)
    if full:
        names = "; ".join(f"{s} (range set {conf.range_sets.index(s)})" for s in full)
        raise CniError(Code.NOT_AVAILABLE, f"no IP addresses available in range set {names}")


PLUGIN = Plugin(name="host-local", handlers={
    "ADD": add, "DEL": delete, "CHECK": check, "GC": gc, "STATUS": status,
})
