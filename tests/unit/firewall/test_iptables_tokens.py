"""iptables-save lines tokenised the way iptables-save quotes them (xtables_save_string)."""
from __future__ import annotations

import pytest

from common.firewall.iptables import split_rule


@pytest.mark.parametrize("line, tokens", [
    ("-A X -j ACCEPT", ["-A", "X", "-j", "ACCEPT"]),
    ('-A P -m comment --comment "dnat name: \\"bridge\\" id: \\"abc\\"" -j CNI-DN-x',
     ["-A", "P", "-m", "comment", "--comment", 'dnat name: "bridge" id: "abc"', "-j", "CNI-DN-x"]),
    ('-A X -m comment --comment "it\\\'s \\\\ here" -j Y', ["-A", "X", "-m", "comment", "--comment", "it's \\ here",
                                                          "-j", "Y"]),
    ('-A X -m comment --comment "two  spaces"', ["-A", "X", "-m", "comment", "--comment", "two  spaces"]),
    ('-A X -m comment --comment ""', ["-A", "X", "-m", "comment", "--comment", ""]),
])
def test_split_rule(line, tokens):
    assert split_rule(line) == tokens


@pytest.mark.parametrize("line", ['-A X --comment "open', '-A X --comment trailing\\'])
def test_unbalanced_quoting_is_an_error(line):
    with pytest.raises(ValueError):
        split_rule(line)
