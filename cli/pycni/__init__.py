"""`pycni`: container networking for people, over the CNI plugins and the on-disk state runtimes share.

    app        argparse front end: every command, its errors (UserError -> a sentence on stderr, exit 1)
    networks   conflists in --conf-dir: build one from `network create` flags, load, list, overlap checks
    chain      libcni 1.1's ADD/CHECK/DEL of a conflist, its result cache (<cache-dir>/results) included
    facts      what is attached to a network: libcni cache, host-local files, live interfaces
    runs       `run`, `ps`, `gc`: a command in a new netns attached to networks, and its state file
    cleanup    `gc`/`doctor`: which attachments are valid, and node state (allocations, veths, rules) none holds
    ports      -p [NETWORK=][HOSTIP:]HOSTPORT:PORT[/PROTO] -> a portMappings entry (and `--mac NETWORK=MAC`)
    table      aligned text tables
"""
