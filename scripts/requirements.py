"""Print the runtime + dev requirements from pyproject.toml (one source of truth for `make venv`)."""
import pathlib
import tomllib

project = tomllib.loads((pathlib.Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
print(" ".join(project["dependencies"] + project["optional-dependencies"]["dev"]))
