"""The agent's loop: lease a subnet, program the data plane for every peer, keep both current.

    start()   config -> lease (Txn) -> device -> first full reconcile -> subnet.env -> ready (healthz 200)
    run()     reconcile on every watch event, after a lost watch, and every --reconcile-interval;
              a keepalive thread renews the etcd lease and re-creates our key if it was lost

Effects come through two objects, `store` (etcd.Etcd) and `kernel` (dataplane.Kernel); everything they are
asked to do is computed by netconfig, leases and plan.
"""
from __future__ import annotations

import logging
import os
import random
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import netaddr

from . import leases as leasing
from . import netconfig, plan
from .etcd import KV, EtcdError, EtcdUnavailable
from .netconfig import ConfigError, NetworkConfig

log = logging.getLogger("pycni-overlayd")


class Store(Protocol):
    def get(self, key: str) -> KV | None: ...
    def range_prefix(self, prefix: str) -> tuple[list[KV], int]: ...
    def create(self, key: str, value: str, *, lease: int) -> bool: ...
    def replace(self, key: str, value: str, *, lease: int, mod_revision: int) -> bool: ...
    def delete(self, key: str) -> None: ...
    def grant(self, ttl: int) -> int: ...
    def keepalive(self, lease: int) -> int: ...
    def revoke(self, lease: int) -> None: ...
    def watch(self, prefix: str, *, start_revision: int, stop: Any = None) -> Any: ...


@dataclass(frozen=True)
class Options:
    prefix: str = "/pycni/network"
    public_ip: str | None = None
    iface: str | None = None
    subnet_file: str = "/run/pycni/subnet.env"
    lease_ttl: int = 86400
    ip_masq: bool = False
    reconcile_interval: float = 60.0
    release_on_exit: bool = False
    forward_rules: bool = True


@dataclass(frozen=True)
class Underlay:
    iface: str
    public_ip: netaddr.IPAddress
    mtu: int


class Agent:
    def __init__(self, options: Options, *, store: Store, kernel: Any, rng: random.Random | None = None) -> None:
        self.options, self.store, self.kernel = options, store, kernel
        self.rng = rng or random.Random()
        self.stopping = threading.Event()
        self.wake = threading.Event()          # set by the watch: something changed, reconcile now
        self.ready = threading.Event()
        self.lock = threading.Lock()           # one reconcile / lease change at a time
        self.config: NetworkConfig | None = None
        self.subnet: netaddr.IPNetwork | None = None
        self.etcd_lease = 0
        self.revision = 0
        self.index = 0                         # the device the peers' entries live on
        self.mac: str | None = None
        self.underlay: Underlay | None = None
        self._watch_sockets: list[Any] = []

    # --- start-up ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.underlay = self._underlay()
        raw = self.store.get(f"{self.options.prefix}/config")
        if raw is None:
            raise ConfigError(f"no cluster config at {self.options.prefix}/config")
        self.config = config = netconfig.parse(raw.value)
        device = f"pycni.{config.vni}"
        if config.backend == "vxlan":
            existing = self.kernel.ipr.link_lookup(ifname=device)
            self.mac = self.kernel.device(device).mac if existing else leasing.vtep_mac(self.underlay.public_ip)
        previous, previous_lease = read_previous(self.options.subnet_file)
        self._acquire(previous=previous, previous_lease=previous_lease)
        assert self.subnet is not None
        if config.backend == "vxlan":
            self.index = self.kernel.ensure_vxlan(
                device, vni=config.vni, port=config.port, local=str(self.underlay.public_ip),
                underlay=self.underlay.iface, mtu=self.mtu, mac=self.mac, address=str(self.subnet.ip)).index
        else:
            self.index = self.kernel.device(self.underlay.iface).index
        self.kernel.enable_forwarding()
        self.kernel.ensure_unreachable(str(config.network))
        if self.options.ip_masq or self.options.forward_rules:
            from . import masq
            masq.ensure(str(config.network), str(self.subnet), masquerade=self.options.ip_masq,
                        forward=self.options.forward_rules)
        self.reconcile()
        self._write_subnet_file()
        self.ready.set()
        log.info("ready: subnet %s, %s, mtu %d, subnet file %s", self.subnet, config.backend, self.mtu,
                 self.options.subnet_file)

    @property
    def mtu(self) -> int:
        assert self.underlay is not None and self.config is not None
        overhead = netconfig.VXLAN_OVERHEAD if self.config.backend == "vxlan" else 0
        return self.underlay.mtu - overhead

    def _write_subnet_file(self) -> None:
        assert self.config is not None and self.subnet is not None
        write_subnet_file(self.options.subnet_file, network=self.config.network, subnet=self.subnet, mtu=self.mtu,
                          ip_masq=self.options.ip_masq, lease_id=self.etcd_lease)

    def _underlay(self) -> Underlay:
        options = self.options
        iface = options.iface or (self.kernel.interface_of(options.public_ip) if options.public_ip
                                  else self.kernel.default_interface())
        public_ip = netaddr.IPAddress(options.public_ip or self.kernel.address_of(iface))
        return Underlay(iface=iface, public_ip=public_ip, mtu=self.kernel.device(iface).mtu)

    def _lease_value(self, subnet: netaddr.IPNetwork) -> str:
        assert self.config is not None and self.underlay is not None
        return leasing.encode(leasing.Lease(subnet=subnet, public_ip=self.underlay.public_ip,
                                            backend=self.config.backend, vtep_mac=self.mac, vni=self.config.vni))

    def _acquire(self, previous: netaddr.IPNetwork | None, previous_lease: int = 0) -> None:
        """Lease a subnet: our own key again (same PublicIP, or `previous` still bound to `previous_lease`), else
        `previous` if free, else a random free one. Every write is a Txn, so two agents racing can never both get
        one subnet; a lost race retries. Once ready, subnet.env is rewritten with what was leased."""
        assert self.config is not None and self.underlay is not None
        for _ in range(20):
            current = self._leases()
            subnet, own = leasing.choose_subnet(self.config, current, public_ip=self.underlay.public_ip,
                                                previous=previous, rng=self.rng, previous_lease=previous_lease)
            lease_id = self.store.grant(self.options.lease_ttl)
            key, value = leasing.key_of(self.options.prefix, subnet), self._lease_value(subnet)
            won = (self.store.replace(key, value, lease=lease_id, mod_revision=own.mod_revision) if own
                   else self.store.create(key, value, lease=lease_id))
            if won:
                if self.subnet is not None and subnet != self.subnet:
                    log.error("subnet changed from %s to %s (ours was taken while we could not renew): "
                              "restart this node's pods", self.subnet, subnet)
                self.subnet, self.etcd_lease = subnet, lease_id
                if own is not None and own.etcd_lease and own.etcd_lease != lease_id:
                    self._quietly_revoke(own.etcd_lease)     # the previous run's lease: nothing is bound to it
                log.info("leased %s (%s), etcd lease %x, ttl %ds", subnet, "renewed" if own else "new", lease_id,
                         self.options.lease_ttl)
                if self.ready.is_set():
                    self._write_subnet_file()
                return
            self.store.revoke(lease_id)
            log.info("lost the race for %s, choosing again", subnet)
        raise EtcdError("could not lease a subnet after 20 attempts")

    def _quietly_revoke(self, lease_id: int) -> None:
        try:
            self.store.revoke(lease_id)
        except EtcdError:
            pass

    def _leases(self) -> list[leasing.Lease]:
        kvs, self.revision = self.store.range_prefix(f"{self.options.prefix}/subnets/")
        found = []
        for kv in kvs:
            lease = leasing.decode(kv.key, kv.value, etcd_lease=kv.lease, mod_revision=kv.mod_revision)
            if lease is None:
                log.warning("ignoring unusable lease %s: %r", kv.key, kv.value[:200])
            else:
                found.append(lease)
        return found

    # --- the loop ---------------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """List every lease, compute the peers' entries, diff against the kernel's, apply the difference."""
        assert self.config is not None and self.subnet is not None and self.underlay is not None
        with self.lock:
            current = self._leases()
            mine = [lease for lease in current if lease.subnet == self.subnet]
            if not mine or mine[0].public_ip != self.underlay.public_ip:
                log.warning("our lease %s is gone from etcd: leasing again", self.subnet)
                self._acquire(previous=self.subnet)
                current = self._leases()
            elif mine[0].etcd_lease != self.etcd_lease and mine[0].etcd_lease:
                log.error("subnet %s was taken over under etcd lease %x by another agent with our public IP %s: "
                          "is --public-ip duplicated?", self.subnet, mine[0].etcd_lease, self.underlay.public_ip)
            wanted = plan.desired(current, own=self.subnet, backend=self.config.backend, vni=self.config.vni)
            changes = plan.diff(self.kernel.read(index=self.index, vxlan=self.config.backend == "vxlan"), wanted)
            if changes:
                failed = self.kernel.apply(changes, index=self.index)
                log.info("reconciled: +%d -%d%s", len(changes.replace), len(changes.remove),
                         f", failed: {'; '.join(failed)}" if failed else "")

    def run(self) -> None:
        """Until stop(): the watch and keepalive threads, and reconciles (woken or periodic)."""
        threads = [threading.Thread(target=self._watch_loop, name="watch", daemon=True),
                   threading.Thread(target=self._keepalive_loop, name="keepalive", daemon=True)]
        for thread in threads:
            thread.start()
        while not self.stopping.is_set():
            self.wake.wait(self.options.reconcile_interval)
            self.wake.clear()
            if self.stopping.is_set():
                break
            try:
                self.reconcile()
            except EtcdError as exc:     # etcd down: the data plane stays as it is, pods keep working
                log.warning("reconcile skipped: %s", exc)
                self.stopping.wait(1.0)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        for sock in list(self._watch_sockets):
            try:
                sock.shutdown(2)
            except OSError:
                pass

    def release(self) -> None:
        """--release-on-exit: give the subnet back (peers remove their entries for it at once)."""
        if self.subnet is not None:
            self.store.delete(leasing.key_of(self.options.prefix, self.subnet))
            self.store.revoke(self.etcd_lease)
            log.info("released %s", self.subnet)

    def _watch_loop(self) -> None:
        failing = False
        while not self.stopping.is_set():
            try:
                for events in self.store.watch(f"{self.options.prefix}/subnets/", start_revision=self.revision + 1,
                                               stop=self._watch_sockets):
                    log.debug("watch: %s", ", ".join(f"{e.type} {e.kv.key}" for e in events))
                    self.wake.set()
                failing = False
            except EtcdError as exc:
                if not failing:                  # once per outage, not once a second
                    log.warning("watch failed: %s", exc)
                failing = True
            self._watch_sockets.clear()
            if not self.stopping.is_set():
                self.wake.set()              # the watch was lost: relist everything, then watch again
                self.stopping.wait(1.0)

    def _keepalive_loop(self) -> None:
        interval = max(0.2, min(self.options.lease_ttl / 3, 300.0))
        down = False
        while not self.stopping.wait(interval if not down else min(interval, 1.0)):
            try:
                ttl = self.store.keepalive(self.etcd_lease)
                if ttl <= 0:
                    log.warning("etcd lease %x expired: leasing %s again", self.etcd_lease, self.subnet)
                    with self.lock:
                        self._acquire(previous=self.subnet)
                    self.wake.set()
                if down:
                    log.info("etcd reachable again")
                down = False
            except EtcdUnavailable as exc:
                if not down:
                    log.warning("cannot renew the lease: %s (data plane left as it is)", exc)
                down = True
            except EtcdError as exc:
                log.warning("lease renewal failed: %s", exc)


def read_previous(path: str) -> tuple[netaddr.IPNetwork | None, int]:
    """The subnet this node had (FLANNEL_SUBNET of our own subnet.env), to ask for it again, and the etcd lease
    it was bound to (PYCNI_LEASE_ID, 0 if absent): a key still bound to that lease is ours."""
    subnet, lease_id = None, 0
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "FLANNEL_SUBNET":
                    subnet = netaddr.IPNetwork(value).cidr
                elif key == "PYCNI_LEASE_ID":
                    lease_id = int(value, 16)
    except (OSError, ValueError, netaddr.AddrFormatError):
        pass
    return subnet, lease_id


def read_previous_subnet(path: str) -> netaddr.IPNetwork | None:
    return read_previous(path)[0]


def write_subnet_file(path: str, *, network: netaddr.IPNetwork, subnet: netaddr.IPNetwork, mtu: int,
                      ip_masq: bool, lease_id: int = 0) -> None:
    """Atomically (temp file + rename): a CNI ADD reads either the old file or the new one, never half.
    PYCNI_LEASE_ID (ours, ignored by the CNI plugins) lets a restart prove the subnet's key is still its own."""
    text = (f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={subnet.ip + 1}/{subnet.prefixlen}\n"
            f"FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={'true' if ip_masq else 'false'}\n"
            + (f"PYCNI_LEASE_ID={lease_id:x}\n" if lease_id else ""))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temp = f"{path}.tmp-{os.getpid()}"
    with open(temp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(temp, path)
