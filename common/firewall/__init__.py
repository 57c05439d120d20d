"""The firewall layer shared by bridge (ipMasq), portmap and firewall: one backend interface, batched calls.

    backend.py    the Backend interface: Iptables, Nftables, NullBackend, and choose() (once per operation)
    iptables.py   read a table with `iptables-save` or `iptables -S`, apply a script with one `iptables-restore`
    nftables.py   read a table with `nft -j list`, apply a script with one `nft -f -`
    names.py      chain names and comments exactly as the reference plugins write them

Plugins build their rules as text with pure functions from what a backend read, and hand it back to write.
"""

# The backends a config may name (`backend`, `ipMasqBackend`); unset means backend.choose(): iptables when usable.
BACKENDS = ("iptables", "nftables")
