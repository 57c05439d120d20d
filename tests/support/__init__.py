"""The tests' toolkit, written once (tests/ is on pytest's pythonpath: `from support import ...`).

    paths     REPO, SHIPPED_PLUGINS, GO_BIN, SYSTEM_PATH; plugin_argv/source_argv; requires_go; tool_dir, link_dir
    netns     Netns, NetnsFactory, throwaway_netns: the node and pod namespaces (conftest's fixtures use them)
    cni       cni_env, in_process/run/start/finish -> Answer, Caller (a plugin and its env); ok, spec_error,
              error; request (a skel.Request)
    configs   ipam, bridge_conf, host_local_conf, portmap_conf, prev_result, loopback_conf, gc_conf
    state     links, veths, lo_state, allocations, tree, firewall_state, nat_rules, nft_ruleset, container_rules
    node      Node: a node driven through libcni (dist/cnitool), with traffic checks and leftovers
    runtime   BUSYBOX, is_static, cgroups, pod_rules: what the podman and containerd tests share
    containerd                        containerd confined to a throwaway node, its CRI client, the pause image

Tables of cases, each run in more than one place: protocol_cases (every plugin's protocol answers),
bridge_strict_checks (bridge's strict ADD reads), portmap_cases (the rule builders' inputs). They and the
containerd package are imported by their module names (`from support.protocol_cases import CASES`).
"""
from .cni import (
                  CONTAINER_VERBS,
                  Answer,
                  Caller,
                  cni_env,
                  error,
                  finish,
                  in_process,
                  ok,
                  request,
                  run,
                  spec_error,
                  start,
                  stdin_of,
)
from .configs import (
                  BRIDGE,
                  NETWORK,
                  SUBNET,
                  VALID,
                  bridge_conf,
                  gc_conf,
                  host_local_conf,
                  ipam,
                  loopback_conf,
                  portmap_conf,
                  prev_result,
)
from .netns import Netns, NetnsFactory, throwaway_netns, unique_name
from .node import Node
from .paths import (
                  GO_BIN,
                  IS_ROOT,
                  REPO,
                  SHIPPED_PLUGINS,
                  SYSTEM_PATH,
                  have,
                  link_dir,
                  plugin_argv,
                  requires_go,
                  source_argv,
                  tool_dir,
)
from .state import allocations, container_rules, firewall_state, links, lo_state, nat_rules, nft_ruleset, tree, veths

__all__ = [
    "BRIDGE", "CONTAINER_VERBS", "GO_BIN", "IS_ROOT", "NETWORK", "REPO", "SHIPPED_PLUGINS", "SUBNET", "SYSTEM_PATH",
    "VALID", "allocations", "Answer", "bridge_conf", "Caller", "cni_env", "container_rules", "error", "finish",
    "firewall_state", "gc_conf", "have", "host_local_conf", "in_process", "ipam", "link_dir", "links", "lo_state",
    "loopback_conf", "nat_rules", "Netns", "NetnsFactory", "nft_ruleset", "Node", "ok", "plugin_argv", "portmap_conf",
    "prev_result", "request", "requires_go", "run", "source_argv", "spec_error", "start", "stdin_of", "throwaway_netns",
    "tool_dir", "tree", "unique_name", "veths"
]
