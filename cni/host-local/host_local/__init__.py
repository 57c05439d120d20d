"""pycni host-local: the reference IPAM plugin's drop-in replacement.

    config.py     ipam configuration -> frozen RangeSet/Range/IpamConfig (every error names key path and value)
    allocator.py  the policy (round-robin, requested IPs, release, GC, STATUS) over any store.Session
    store.py      MemoryStore (tests) and DiskStore: the reference's on-disk format under one flock
    files.py      opening and reading files so that a FIFO or device planted in their place cannot hang us
    dns.py        resolv.conf -> result DNS
    plugin.py     the verbs, wired to common.skel as PLUGIN
"""
