"""pycni loopback: the reference loopback plugin's drop-in replacement (it brings up `lo` in the container).

    addresses.py  pure: Go's loopback-address rule, the first offending address, the ADD result
    link.py       the netlink edge: a handle in the container's netns, `lo` found by name, set up/down
    plugin.py     the verbs, wired to common.skel as PLUGIN
"""
