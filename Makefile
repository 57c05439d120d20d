# pycni: the human entry point. `make demo` and `make test` do all set-up on a fresh Debian 12 machine (as root).
PYTHON     ?= python3
VENV       := .venv
PY         := $(VENV)/bin/python
DIST       ?= dist
CNI_BIN    := $(DIST)/cni-bin
CNITOOL    := $(DIST)/cnitool
DESTDIR    ?=
CNI_BIN_DIR ?= /opt/cni/bin
PYTEST_ARGS ?=
SOURCES    := $(shell find common cni overlay cli -name '*.py') build/plugins.spec pyproject.toml plugins.toml
# The shipped plugins and their source roots: plugins.toml, the one list (scripts/plugins.py reads it).
PLUGINS    := $(shell $(PYTHON) scripts/plugins.py names)
PLUGIN_ROOTS := $(shell $(PYTHON) scripts/plugins.py roots)

.PHONY: all deps venv build driver lint test unit demo install bench clean

all: build driver

deps:
	bash scripts/install-deps.sh

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $$($(PY) scripts/requirements.py)
	touch $@

venv: $(VENV)/.stamp

$(CNI_BIN)/.stamp: $(VENV)/.stamp $(SOURCES)
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath $(DIST) --workpath $(DIST)/work build/plugins.spec
	touch $@

build: deps $(CNI_BIN)/.stamp

$(CNITOOL): tests/driver/main.go tests/driver/build.sh
	bash tests/driver/build.sh $(CNITOOL)

driver: deps $(CNITOOL)

# Static checks, configured in pyproject.toml: mypy --strict, then ruff (lint and import order). Every
# cni/<plugin>/main.py is module `main`, so each is checked on its own run (the others come from mypy's cache).
lint: deps venv
	MYPYPATH=$(PLUGIN_ROOTS) $(VENV)/bin/mypy
	for entry in cni/*/main.py; do MYPYPATH=$(PLUGIN_ROOTS) $(VENV)/bin/mypy --no-error-summary $$entry || exit 1; done
	$(VENV)/bin/ruff check

# Everything: lint, then unit (no root), integration (root, throwaway namespaces), e2e (built executables via libcni).
test: build driver lint
	$(PY) -m pytest $(PYTEST_ARGS) tests

unit: venv
	$(PY) -m pytest -q tests/unit

demo: build driver
	$(PY) scripts/demo.py --cni-bin $(CNI_BIN) --cnitool $(CNITOOL)

bench: build driver
	$(PY) scripts/bench.py --cni-bin $(CNI_BIN) --cnitool $(CNITOOL) --json $(DIST)/bench.json

install: $(CNI_BIN)/.stamp
	install -d $(DESTDIR)$(CNI_BIN_DIR)
	cp -a $(CNI_BIN)/.pycni $(addprefix $(CNI_BIN)/,$(PLUGINS)) $(DESTDIR)$(CNI_BIN_DIR)/
	install -d $(DESTDIR)/usr/local/lib $(DESTDIR)/usr/local/bin
	rm -rf $(DESTDIR)/usr/local/lib/pycni-overlayd
	cp -a $(DIST)/overlayd $(DESTDIR)/usr/local/lib/pycni-overlayd
	ln -sfn ../lib/pycni-overlayd/pycni-overlayd $(DESTDIR)/usr/local/bin/pycni-overlayd
	rm -rf $(DESTDIR)/usr/local/lib/pycni
	cp -a $(DIST)/pycni $(DESTDIR)/usr/local/lib/pycni
	ln -sfn ../lib/pycni/pycni $(DESTDIR)/usr/local/bin/pycni

clean:
	rm -rf $(DIST) build/work
