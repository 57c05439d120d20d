"""Firewall edges shared by bridge (ipMasq) and portmap: one batched call per operation.

    iptables.py   read a table with `iptables-save`, apply a script with one `iptables-restore --noflush`
    nftables.py   read a table with `nft -j list`, apply a script with one `nft -f -`

Plugins build their rules as data/text with pure functions and hand the result to these edges.
"""
