"""The start-up budget: what a plugin process may import. It is stated here, once, and checked in a bare
interpreter.

A plugin runs on every pod start, so its imports count (README, "Build choices and start-up"). In-process
tests cannot see them, because pytest has already imported json, re, typing and the rest. The frozen build also
differs from the source tree wherever a stdlib shortcut relies on a module being loaded: common/jsonio.py
answered malformed JSON with 999 in the executables, because `_json` raises through json.decoder, which nothing
there had imported. So each plugin's main.py runs here in `python -I -S`: no site or sitecustomize, no PYTHON*
variables, no script directory, no pytest. It runs on malformed stdin, VERSION and no CNI_COMMAND, and a small
wrapper reports `sys.modules` from skel.main's final `os._exit`. A second probe imports every module of a plugin
package (what its verbs import lazily), and a static scan finds any import of a forbidden module in the source.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, SHIPPED_PLUGINS
from support.protocol_cases import BY_ID, check_answer

# The budget. No plugin process imports these, whatever it does, or it pays the cost named on each line.
FORBIDDEN = {
    "json": "imports re; common/jsonio.py drives the _json C scanner and encoder itself (~7 ms)",
    "re": "the regex compiler and enum: most of what `import json` costs",
    "enum": "~4 ms; common.errors.Code is plain ints",
    "typing": "~4 ms; annotations are strings, typing imports sit under `TYPE_CHECKING = False`",
    "dataclasses": "imports inspect and runs exec per class; common/record.py replaces it",
    "inspect": "imports dis, enum, tokenize, re (what dataclasses would drag in)",
    "subprocess": "imports signal, threading, selectors, locale; common/exec.py uses os.posix_spawn",
    "socket": "the Python wrapper imports enum and selectors; common/rtnl.py uses the _socket C module",
    "asyncio": "an event loop for a millisecond process (pyroute2 brought one)",
    "pyroute2": "~110 ms to import plus 60-90 ms of teardown per call; common/rtnl.py is the netlink client",
    "netaddr": "~40 ms to import; addresses use common/ip.py",
    "ipaddress": "~2 ms, and its functools brings collections (~4.5 ms more); common/ip.py parses the same",
    "contextlib": "imports functools and collections (~4.5 ms); common/scoped.py has the three pieces we use",
    "ctypes": "~3.5 ms, and PyInstaller's bootstrap imports it wherever it is bundled; common/netns.py uses _ctypes",
    "functools": "imports collections, operator, keyword, reprlib (~4 ms); nothing in a plugin needs it",
    "collections": "~2.5 ms (collections.abc under TYPE_CHECKING is for the checker only)",
}
# Beyond FORBIDDEN, per plugin: what its work never needs, so its start-up must not pay for it.
NOT_NEEDED = {
    "host-local": {"common.netns": "host-local enters no netns",
                   "common.netlink": "host-local configures no link", "common.rtnl": "host-local configures no link",
                   "common.exec": "host-local runs no program"},
}

# -I -S and `-c`: nothing but the interpreter itself is loaded before main.py. os._exit is where skel.main ends
# (it skips interpreter teardown), so the report is written there, then the process exits as main asked.
WRAPPER = """\
import os, sys
path, report = sys.argv[1], sys.argv[2]
exit_now = os._exit
def _exit(status):
    with open(report, "w") as out:
        out.write("\\n".join([str(status)] + sorted(sys.modules)))
    exit_now(status)
os._exit = _exit
sys.argv = [path]
with open(path, "rb") as source:
    code = compile(source.read(), path, "exec")
exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
"""
# From the protocol table: no command, VERSION, and one malformed input per decoder path (the executables get
# every malformed case, tests/e2e/test_executables.py).
START_CASES = [BY_ID[id] for id in (
    "no-command-prints-about", "version", "version-ignores-malformed-stdin", "malformed:empty",
    "malformed:brace-not-json", "malformed:trailing-comma", "malformed:unclosed-list", "malformed:list",
    "malformed:invalid-utf8", "malformed:nan", "malformed:infinity", "malformed:minus-infinity",
    "malformed:deep-unclosed", "malformed:deep-balanced", "malformed-DEL", "too-large")]


def main_py(plugin: str) -> Path:
    path = REPO / "cni" / plugin / "main.py"
    assert path.is_file(), f"shipped plugin {plugin!r} has no {path}"
    return path


def over_budget(plugin: str, modules: set[str]) -> dict[str, str]:
    budget = {**FORBIDDEN, **NOT_NEEDED.get(plugin, {})}
    return {name: why for name, why in budget.items() if name in modules}


@pytest.mark.parametrize("case", START_CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_bare_interpreter_start(tmp_path: Path, plugin: str, case) -> None:
    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", WRAPPER, str(main_py(plugin)), str(report)],
                          input=case.stdin, env=case.env, capture_output=True, timeout=60)
    stdout, stderr = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert report.exists(), f"main.py ended without skel.main's os._exit (exit {done.returncode}): {stderr}"
    status, *modules = report.read_text().splitlines()
    assert int(status) == done.returncode
    check_answer(case, plugin, done.returncode, stdout, stderr)
    assert over_budget(plugin, set(modules)) == {}


def package_modules(plugin: str) -> list[str]:
    """Every module of the plugin's package (cni/<plugin>/<package>/*.py), as importable names."""
    packages = [d for d in (REPO / "cni" / plugin).iterdir() if (d / "__init__.py").is_file()]
    assert len(packages) == 1, packages
    return sorted(f"{packages[0].name}.{p.stem}" for p in packages[0].glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_whole_plugin_package_stays_in_budget(plugin: str) -> None:
    """What the verbs import lazily (a backend, the netlink client) is in the budget too."""
    probe = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'cni' / plugin)!r}]\n"
             f"for name in {package_modules(plugin)!r}: __import__(name)\n"
             "print('\\n'.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], env={}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert over_budget(plugin, set(done.stdout.split())) == {}


def imports_outside_type_checking(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import that runs: `if TYPE_CHECKING:` bodies are skipped."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return found


def test_the_scan_sees_function_imports_and_skips_type_checking() -> None:
    tree = ast.parse("if TYPE_CHECKING:\n    from typing import Any\ndef f():\n    import re\n")
    assert imports_outside_type_checking(tree) == [(4, "re")]


def test_no_source_imports_a_forbidden_module() -> None:
    """The static half: also an import inside a function, on a path no probe above takes."""
    sources = sorted((REPO / "common").rglob("*.py")) + sorted((REPO / "cni").rglob("*.py"))
    assert sources
    bad = [f"{path.relative_to(REPO)}:{line}: {module} ({FORBIDDEN[module.split('.')[0]]})"
           for path in sources for line, module in imports_outside_type_checking(ast.parse(path.read_bytes()))
           if module.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_the_wrapper_reports_what_the_script_imported(tmp_path: Path) -> None:
    """A budget check that saw nothing would pass on anything: the wrapper sees an import and the exit status."""
    script, report = tmp_path / "main.py", tmp_path / "report"
    script.write_text("import os, json\nos._exit(3)\n")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", WRAPPER, str(script), str(report)], env={},
                          capture_output=True, timeout=60)
    status, *modules = report.read_text().splitlines()
    assert (done.returncode, status) == (3, "3")
    assert {"json", "re"} <= set(over_budget("any", set(modules)))
