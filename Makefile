# The two commands of the README: `make demo` (install + main job) and `make test` (install + all tests).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8

.PHONY: install demo test lock clean

install: $(VENV)/.installed

# Reinstalled whenever the lock file or the package metadata change.
$(VENV)/.installed: requirements.lock setup.cfg
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip sync -q -p $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	bash scripts/system-packages.sh
	touch $@

demo: install
	$(BIN)/hub demo

test: install
	$(BIN)/python -m pytest

# Re-resolve requirements.in into the lock file (only when changing dependencies).
lock:
	$(BIN)/uv pip compile -q -p 3.11 --generate-hashes requirements.in -o requirements.lock

clean:
	rm -rf data .pytest_cache
