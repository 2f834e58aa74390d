# The front door. `make run` and `make test` do all the set-up they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

# Airflow lives inside the project (git-ignored), never in ~/airflow.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM := 4

DATASET    ?= $(MOVIELENS_DATASET)
TOP_N      ?= 100
# empty: each model's own cap (pipeline.core.config.TrainParams.max_epochs unless its spec says otherwise)
MAX_EPOCHS ?=
DEVICE     ?= auto
# empty: each job's own default set (nightly: most_popular,ease,biased_mf,neumf_features,sasrec;
# evaluate: every model). A comma-separated list picks models by name.
MODELS     ?=
DAG_ID     := movielens_nightly
EVAL_DAG_ID := movielens_evaluation

FROM       ?=
TO         ?=
EVERY      ?=
PORT       ?= 8080
WORKERS    ?= 2
# USER=<id> on make's command line (not the login name USER holds in the environment)
USER_ID    := $(if $(filter command line,$(origin USER)),$(USER))

# The DAG's params as JSON, from the variables above (run and backfill; evaluate without top_n).
# Without MODELS the DAG's own default set applies.
CONF_PY = import json,sys; a = sys.argv[1:]; \
	conf = {"dataset": a[0], "device": a[3]} | ({"top_n": int(a[1])} if a[1] else {}) | ({"max_epochs": int(a[2])} if a[2] else {}); \
	print(json.dumps(conf | ({"models": a[4].split(",")} if a[4] else {})))
CONF = $$($(PY) -c '$(CONF_PY)' "$(if $(DATASET),$(abspath $(DATASET)),)" "$(TOP_N)" "$(MAX_EPOCHS)" "$(DEVICE)" "$(MODELS)")
EVAL_CONF = $$($(PY) -c '$(CONF_PY)' "$(if $(DATASET),$(abspath $(DATASET)),)" "" "$(MAX_EPOCHS)" "$(DEVICE)" "$(MODELS)")

.PHONY: help setup run cli evaluate show-user backfill airflow cluster docker-config test lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the locked environment into $(VENV) (a few minutes the first time)"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	$(PY) -m ops.pools
	@touch $@

setup: $(VENV)/.installed $(AIRFLOW_HOME)/.migrated ## create the environment and Airflow's metadata DB

run: setup ## run the nightly DAG once through Airflow (DATASET=<folder>, MODELS, TOP_N, MAX_EPOCHS, DEVICE)
	@conf=$(CONF); \
	echo "airflow dags test $(DAG_ID) --conf $$conf"; \
	$(BIN)/airflow dags test $(DAG_ID) --conf "$$conf"

cli: $(VENV)/.installed ## the nightly job without Airflow, in one process
	$(BIN)/movielens run $(if $(DATASET),--dataset $(DATASET),) --top-n $(TOP_N) $(if $(MAX_EPOCHS),--max-epochs $(MAX_EPOCHS),) --device $(DEVICE) $(if $(MODELS),--models $(MODELS),)

evaluate: setup ## the weekly evaluation DAG once through Airflow: every model, both protocols; publishes nothing
	@conf=$(EVAL_CONF); \
	echo "airflow dags test $(EVAL_DAG_ID) --conf $$conf"; \
	$(BIN)/airflow dags test $(EVAL_DAG_ID) --conf "$$conf"

show-user: $(VENV)/.installed ## a user's profile, best/worst rated movies and current top-10: USER=<id> [PLOT=1]
	@test -n "$(USER_ID)" || { echo "usage: make show-user USER=<user id> [PLOT=1]"; exit 2; }
	$(BIN)/movielens show-user $(USER_ID) $(if $(PLOT),--plot,)

backfill: setup ## replay history through a real scheduler: FROM=YYYY-MM-DD TO=YYYY-MM-DD [EVERY=day|week|month]; resumes
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [EVERY=day|week|month] [DATASET=… MODELS=…]"; exit 2; }
	@conf=$(CONF); \
	$(PY) -m ops.backfill --from "$(FROM)" --to "$(TO)" $(if $(EVERY),--every $(EVERY),) --port $(PORT) --conf "$$conf"

airflow: setup ## a local Airflow (UI, scheduler, dag-processor) at PORT (8080) until Ctrl-C
	$(PY) -m ops.local_airflow --port $(PORT)

cluster: setup ## a distributed Airflow until Ctrl-C: Postgres, Redis, CeleryExecutor with WORKERS (2) workers, UI at PORT
	$(PY) -m ops.cluster --workers $(WORKERS) --port $(PORT)

docker-config: ## validate docker/compose.yaml (docker compose, or Debian's docker-compose)
	@if docker compose version > /dev/null 2>&1; then dc="docker compose"; \
	elif command -v docker-compose > /dev/null; then dc=docker-compose; \
	else echo "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"; exit 1; fi; \
	$$dc -f docker/compose.yaml config -q && $$dc -f docker/compose.yaml --profile gpu config -q && \
	AIRFLOW_EXECUTOR=CeleryExecutor $$dc -f docker/compose.yaml --profile celery config -q && \
	echo "docker/compose.yaml is valid ($$dc), plain and with the gpu and celery profiles"

test: setup ## run the test suite
	$(BIN)/pytest -q

lint: $(VENV)/.installed ## ruff, and the import layers (no cycle, no import from a lower layer up)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(PY) -m tools.import_layers

clean: ## remove run artefacts and Airflow state (keeps the venv and the warehouse)
	rm -rf var .airflow
