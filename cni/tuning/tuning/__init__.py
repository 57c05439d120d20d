"""pycni tuning: the reference tuning plugin's drop-in replacement (sysctls and link attributes of CNI_IFNAME in
the container, the link's original attributes saved and restored on DEL).

    config.py     pure: the config, args.cni, the mac capability and CNI_ARGS MAC, merged by the reference's rules
    sysctls.py    pure: sysctl key -> /proc/sys file (IFNAME substitution), the allowlist
    regexp.py     pure: the Go regular expressions of the allowlist, matched without the re module
    restore.py    pure: the restore file (the reference's bytes), what ADD saves, DEL restores and CHECK compares
    host.py       the effects: the pod's netns (sysctl files, netlink), the data dir, the allowlist file
    plugin.py     the verbs, wired to common.skel as PLUGIN
"""
