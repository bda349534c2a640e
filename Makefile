# dsalab: two commands. `make run` sets up and runs the main job; `make test` sets up and runs every test.
# Set-up: a .venv from the pinned requirements, the native module built by pip (cffi API mode), and a
# Chromium for static plot export (Debian's package, installed with apt when missing and possible).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
NATIVE := $(wildcard native/*.c native/*.h native/*.py) setup.py pyproject.toml
SWEEP ?= data/sweeps/quick.toml
# this host's hardware profile (what `dsalab calibrate` writes): the model's prediction with a real DSA device
PROFILE ?= data/hardware/$(shell $(PYTHON) -c 'import socket; print(socket.gethostname())').toml

.PHONY: run test test-asan setup lint bench bench-predict clean chromium info

# the main job: machine info, then the sweep $(SWEEP) (resumed if an earlier `make run` was interrupted), written
# to data/results/<hostname>/<date>-<sweep>-<commit8>.nc, then its summary. `make run SWEEP=data/sweeps/x.toml`
# runs another sweep file; `make bench` runs the kernel benchmark. The summary ends with the model's prediction
# for this host with a real DSA device beside each emulated DSA point (--model $(PROFILE); the profile is made
# with `dsalab calibrate --quick` when this host has none). Then, from the file the sweep says it wrote (its last
# `wrote` line), the report (one self-contained HTML file: what ran, the caveats, the summary, the seed's figures
# beside ours, every figure; needs no browser) goes to data/reports/<result name>.html and the figures to
# data/figures/ as HTML and PNG (PNG needs Chromium). Each step runs even when an earlier one failed (a failed
# PNG export still leaves the report); the report's path is printed last, and the run fails at the end, naming
# each step that failed with its exit status, when any did (each step's own error is printed above).
run: setup
	$(BIN)/dsalab info
	@test -f $(PROFILE) || $(BIN)/dsalab calibrate --quick --out $(PROFILE)
	@log=$$(mktemp); $(BIN)/dsalab sweep $(SWEEP) --resume --model $(PROFILE) >$$log; rc=$$?; cat $$log; \
	  result=$$(sed -n 's/^wrote //p' $$log | tail -n 1); rm -f $$log; failed=""; \
	  if [ -z "$$result" ]; then \
	    echo "make run: the sweep wrote no result file (no 'wrote' line; sweep rc $$rc)" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then echo "make run: sweep failed (rc $$rc) after writing $$result" >&2; \
	    failed="$$failed sweep(rc $$rc)"; fi; \
	  report="data/reports/$$(basename "$$result" .nc).html"; \
	  $(BIN)/dsalab report "$$result" -o "$$report" >/dev/null; rc=$$?; \
	  if [ $$rc -ne 0 ]; then failed="$$failed report(rc $$rc)"; fi; \
	  $(BIN)/dsalab plot "$$result" --out data/figures --formats html,png; rc=$$?; \
	  if [ $$rc -ne 0 ]; then failed="$$failed plot(rc $$rc)"; fi; \
	  case "$$failed" in *report*) ;; *) echo "report: $$report";; esac; \
	  if [ -n "$$failed" ]; then echo "make run: failed steps:$$failed (their errors are above)" >&2; exit 1; fi

test: setup
	$(BIN)/python -m pytest

# the tests that drive native code, against a build with AddressSanitizer + UndefinedBehaviorSanitizer (build/asan/;
# the checkout's own build is untouched); any report fails the run. TESTS="test_offload ..." picks other test files.
test-asan: setup
	bash tests/asan.sh

setup: $(VENV)/.stamp-native chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# editable install: the native module is built in place, so notebooks and tests use this checkout
$(VENV)/.stamp-native: $(VENV)/.stamp-deps $(NATIVE)
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      echo "installing Debian's chromium for static plot export (kaleido)"; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	    else echo "warning: no chromium found; PNG/SVG export needs one (apt-get install chromium)"; fi; }

lint: setup
	$(BIN)/ruff check dsalab tests benchmarks notebooks native
	$(BIN)/ruff format --check dsalab tests benchmarks notebooks native

bench: setup
	$(BIN)/python benchmarks/bench_kernels.py

# predictions per second of dsalab.model.predict and a 1,000-point model sweep end to end (data/bench/predict.json)
bench-predict: setup
	$(BIN)/python benchmarks/bench_predict.py

clean:
	rm -rf $(VENV) build dsalab/_native*.so dsalab/_native.c *.egg-info
