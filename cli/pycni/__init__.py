"""`pycni`: container networking for people, over the CNI plugins and the on-disk state runtimes share.

    app        argparse front end: every command, its errors (UserError -> a sentence on stderr, exit 1)
    networks   conflists in --conf-dir: build one from `network create` flags, load, list, overlap checks
    chain      libcni 1.1's ADD/CHECK/DEL of a conflist, its result cache (<cache-dir>/results) included
    facts      what is attached to a network: libcni cache, host-local files, live interfaces
    runs       `run`, `ps`, `gc`: a command in a new netns attached to networks, and its state file
    ports      -p [HOSTIP:]HOSTPORT:PORT[/PROTO] -> a portMappings entry
    table      aligned text tables
"""
