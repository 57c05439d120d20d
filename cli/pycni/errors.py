"""One exception for everything a person did wrong or the system refused: its message is printed as is."""
from __future__ import annotations


class UserError(Exception):
    """A sentence for the person at the terminal, naming the argument and its value (exit status 1)."""


class PluginError(UserError):
    """A plugin of a chain answered with a CNI error."""

    def __init__(self, plugin: str, verb: str, code: int, msg: str, details: str = "") -> None:
        self.plugin, self.verb, self.code, self.msg, self.details = plugin, verb, code, msg, details
        text = f"plugin {plugin} failed ({verb}): code {code}: {msg}"
        super().__init__(text + (f" ({details})" if details else ""))
