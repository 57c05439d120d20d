"""The shipped plugins, from plugins.toml (the one list): `python3 scripts/plugins.py names|roots`.

names   the executables' names, space-separated (the Makefile's install)
roots   their source roots, colon-separated (MYPYPATH for `make lint`)
"""
from __future__ import annotations

import pathlib
import sys
import tomllib

REPO = pathlib.Path(__file__).resolve().parent.parent


def plugins() -> dict[str, dict[str, object]]:
    """name -> its table in plugins.toml, in file order."""
    with open(REPO / "plugins.toml", "rb") as listing:
        return tomllib.load(listing)


def main(argv: list[str]) -> int:
    if argv[1:] == ["names"]:
        print(" ".join(plugins()))
    elif argv[1:] == ["roots"]:
        print(":".join(str(entry["source"]) for entry in plugins().values()))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
