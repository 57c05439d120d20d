"""pycni-overlayd: the node agent of the VXLAN / host-gw overlay (issue 15).

    cli        flags, logging, signals, exit status (the only module that exits)
    agent      the loop: lease, reconcile, watch, keepalive, subnet.env, healthz
    netconfig  <prefix>/config, flannel's JSON (pure)
    leases     lease keys/values in flannel's layout, subnet choice (pure)
    plan       desired data plane from leases, and the diff against the kernel's (pure)
    etcd       the etcd v3 JSON gateway over http.client (effect)
    dataplane  VXLAN device, neighbours, FDB, routes through pyroute2 (effect)
    masq       the --ip-masq rules, one iptables-restore (effect over a pure builder)
"""
