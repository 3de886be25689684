# Switchboard — one target per gate. `make dev` and `make test` set themselves up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/common/requirements.txt functions/analytics/requirements.txt functions/upload/requirements.txt constraints.txt | md5sum | cut -c1-12)
SAM_VENV ?= .venv-sam
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell md5sum requirements-checkov.txt | cut -c1-12)
SAM_CLI_VERSION ?= 1.170.0
ENV ?= default
PYTEST_ARGS ?= -n 2 --dist loadgroup
# The AsyncAPI CLI (pinned with its lock in tools/asyncapi/) validates docs/asyncapi.json.
NPM_TOOLS ?= .npm-tools
ASYNCAPI := $(NPM_TOOLS)/node_modules/.bin/asyncapi
DEVSERVER_ARGS ?=

.PHONY: venv dev invoke redrive test test-fast fuzz mutate lint validate scan build deploy bench screenshots clean pr generate asyncapi-cli

$(STAMP):
	@test -x $(PY) || $$(scripts/python.sh) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) ..."
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

dev: venv ## the local stack: WebSocket + HTTP API, demo page, embedded AWS (moto)
	$(PY) -m devserver $(DEVSERVER_ARGS)

invoke: venv ## sam local invoke without Docker: make invoke FN=ConnectionFunction EVENT=events/ping.json
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<FunctionLogicalId> EVENT=events/<file>.json"; exit 2; }
	$(PY) -m devserver invoke $(FN) -e $(EVENT)

redrive: venv ## one DLQ back to its source queue: make redrive DLQ=DeliveryDLQ [STACK=switchboard-dev]
	@test -n "$(DLQ)" || { echo "usage: make redrive DLQ=<DLQ logical id or URL> [STACK=<stack>] (devserver: AWS_ENDPOINT_URL=<moto URL>)"; exit 2; }
	$(PY) scripts/redrive.py $(DLQ) $(if $(STACK),--stack $(STACK),)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $$(scripts/python.sh) -m venv $(CHECKOV_VENV)
	@echo "installing checkov into $(CHECKOV_VENV) ..."
	@$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $@

scan: $(CHECKOV_STAMP) ## checkov on template.yaml (skips and their reasons: .checkov.yaml + the template)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f template.yaml

test: venv $(CHECKOV_STAMP) asyncapi-cli ## the whole suite: unit, integration, e2e, browser
	$(PY) -m pytest $(PYTEST_ARGS)

generate: venv ## regenerate what the wire models define: schema, protocol.md tables, AsyncAPI, JS and Python client types
	PYTHONPATH=layers/common $(PY) -m switchboard.wire generate

$(ASYNCAPI): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	@mkdir -p $(NPM_TOOLS)
	cp tools/asyncapi/package.json tools/asyncapi/package-lock.json $(NPM_TOOLS)/
	npm ci --prefix $(NPM_TOOLS) --no-audit --no-fund --ignore-scripts
	@touch $@

asyncapi-cli: $(ASYNCAPI) ## the pinned AsyncAPI CLI (tests/unit/test_wire_contract.py runs its validate)

test-fast: venv ## unit + integration only
	$(PY) -m pytest tests/unit tests/integration $(PYTEST_ARGS)

fuzz: venv ## the fuzz suites with many more examples than `make test` runs
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(PY) -m pytest -m fuzz -p no:xdist -s

mutate: venv ## plants each bug of tests/mutation/mutants.py in a copy; its tests must fail (docs/testing.md)
	$(PY) -m tests.mutation $(MUTANTS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

validate: venv ## cfn-lint, a samtranslator transform, and `sam validate --lint` when aws-sam-cli installs
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) -m devserver.template --transform template.yaml > /dev/null && echo "samtranslator transform: ok"
	@if $(MAKE) -s sam-cli >/dev/null 2>&1; then $(SAM_VENV)/bin/sam validate --lint --region us-east-1; \
	  else echo "aws-sam-cli did not install here: skipped sam validate (cfn-lint + samtranslator ran)"; fi

sam-cli: # aws-sam-cli pins an older boto3, so it lives in its own venv
	@test -x $(SAM_VENV)/bin/sam || { $$(scripts/python.sh) -m venv $(SAM_VENV) && $(SAM_VENV)/bin/pip install -q aws-sam-cli==$(SAM_CLI_VERSION); }

build: sam-cli
	$(SAM_VENV)/bin/sam build --config-env $(ENV)

deploy: build
	$(SAM_VENV)/bin/sam deploy --config-env $(ENV)

bench: venv
	$(PY) -m bench --out bench/results.json

screenshots: venv ## retake docs/screenshots/*.png of the demo app (needs chromium)
	$(PY) -m tests.browser.screenshots

pr: lint validate test

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(NPM_TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache
