# The two commands: `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Both create or reuse .venv. torch is installed first, pinned, so that pip takes the CPU wheel
# on machines that have it and never pulls the CUDA stack as a side effect of another package.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: demo test test-fast install sandbox-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[dev]"
	# The Open Bandit Dataset sample ships inside obp; only its data files are read, and its
	# own pins do not install on Python 3.11, so it comes without dependencies.
	$(PIP) install -q --no-deps obp==0.4.1
	touch $(STAMP)

install: $(STAMP) sandbox-deps

# bubblewrap isolates the code sandbox; installed on Debian when we may, else the sandbox warns
# and falls back to rlimits + a network namespace.
sandbox-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1)) || echo "bubblewrap not installed; the sandbox will fall back to rlimits"; \
	  else echo "bubblewrap not found; the sandbox will fall back to rlimits"; fi; }

demo: install
	$(VENV)/bin/feedbackrl demo

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
