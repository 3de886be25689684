# Switchboard — one target per gate. `make dev` and `make test` set themselves up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt layers/common/requirements.in functions/analytics/requirements.in functions/upload/requirements.in constraints.txt | md5sum | cut -c1-12)
SAM_VENV ?= .venv-sam
CHECKOV_VENV ?= .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell md5sum requirements-checkov.txt | cut -c1-12)
SCHEMATHESIS_VENV ?= .venv-schemathesis
SCHEMATHESIS_STAMP := $(SCHEMATHESIS_VENV)/.installed-$(shell md5sum requirements-schemathesis.txt | cut -c1-12)
SAM_CLI_VERSION ?= 1.170.0
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
export SAM_CLI_TELEMETRY := 0
ENV ?= default
PYTEST_ARGS ?= -n 2 --dist loadgroup
# The AsyncAPI CLI (pinned with its lock in tools/asyncapi/) validates docs/asyncapi.json.
NPM_TOOLS ?= .npm-tools
ASYNCAPI := $(NPM_TOOLS)/node_modules/.bin/asyncapi
DEVSERVER_ARGS ?=

.PHONY: venv dev invoke redrive replay test test-fast fuzz mutate lint validate scan build deploy bench screenshots clean pr generate asyncapi-cli \
	requirements generate-requirements sam-cli schemathesis

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

replay: venv ## a stream DLQ's failed batches replayed to their consumer: make replay DLQ=AnalyticsDLQ [STACK=...]
	@test -n "$(DLQ)" || { echo "usage: make replay DLQ=<ConnectionEventsDLQ|SearchIndexDLQ|AnalyticsDLQ or URL> [STACK=<stack>] (devserver: AWS_ENDPOINT_URL=<moto URL> AWS_ENDPOINT_URL_LAMBDA=<devserver http URL>)"; exit 2; }
	$(PY) -m scripts.replay $(DLQ) $(if $(STACK),--stack $(STACK),)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $$(scripts/python.sh) -m venv $(CHECKOV_VENV)
	@echo "installing checkov into $(CHECKOV_VENV) ..."
	@$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
	@rm -f $(CHECKOV_VENV)/.installed-* && touch $@

$(SCHEMATHESIS_STAMP): requirements-schemathesis.txt
	@test -x $(SCHEMATHESIS_VENV)/bin/python || $$(scripts/python.sh) -m venv $(SCHEMATHESIS_VENV)
	@echo "installing schemathesis into $(SCHEMATHESIS_VENV) ..."
	@$(SCHEMATHESIS_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-schemathesis.txt
	@rm -f $(SCHEMATHESIS_VENV)/.installed-* && touch $@

schemathesis: $(SCHEMATHESIS_STAMP) # the analytics API's OpenAPI checker (tests/e2e/test_schemathesis.py)

scan: $(CHECKOV_STAMP) ## checkov on template.yaml (skips and their reasons: .checkov.yaml + the template)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml -f template.yaml

test: venv $(CHECKOV_STAMP) $(SCHEMATHESIS_STAMP) asyncapi-cli ## the whole suite: unit, integration, e2e, browser, schemathesis
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

fuzz: venv $(SCHEMATHESIS_STAMP) ## the fuzz suites with many more examples than `make test` runs
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(PY) -m pytest -m fuzz -p no:xdist -s

mutate: venv ## plants each bug of tests/mutation/mutants.py in a copy; its tests must fail (docs/testing.md)
	$(PY) -m tests.mutation $(MUTANTS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

validate: venv sam-cli ## cfn-lint, a samtranslator transform, `sam validate --lint`, the pinned requirements
	$(VENV)/bin/cfn-lint template.yaml
	$(PY) -m devserver.template --transform template.yaml > /dev/null && echo "samtranslator transform: ok"
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1
	$(PY) scripts/pinned_requirements.py generate --check

# aws-sam-cli pins an older boto3, so it lives in its own venv. An install that fails
# fails the target (and leaves no stamp, so the next run tries again).
$(SAM_STAMP):
	@test -x $(SAM_VENV)/bin/python || $$(scripts/python.sh) -m venv $(SAM_VENV)
	@echo "installing aws-sam-cli $(SAM_CLI_VERSION) into $(SAM_VENV) ..."
	@$(SAM_VENV)/bin/pip install -q --disable-pip-version-check aws-sam-cli==$(SAM_CLI_VERSION)
	@rm -f $(SAM_VENV)/.installed-* && touch $@

sam-cli: $(SAM_STAMP)

requirements: venv ## regenerate the pinned requirements.txt that sam builds from (requirements.in + constraints.txt)
	$(PY) scripts/pinned_requirements.py generate

generate-requirements: requirements

# sam checks the runtime's interpreter (python3.13) on PATH: put the one scripts/python.sh
# finds first, so the build works where the default python3 is another version. The built
# artifacts are then compared with constraints.txt.
build: venv sam-cli ## sam build, then every artifact's installed versions checked against the lock
	$(PY) scripts/pinned_requirements.py generate --check
	python313=$$(scripts/python.sh 3.13) && \
	  PATH="$$(dirname "$$python313"):$$PATH" $(SAM_VENV)/bin/sam build --config-env $(ENV)
	$(PY) scripts/pinned_requirements.py verify-build .aws-sam/build

deploy: build
	$(SAM_VENV)/bin/sam deploy --config-env $(ENV)

bench: venv
	$(PY) -m bench --out bench/results.json

screenshots: venv ## retake docs/screenshots/*.png of the demo app (needs chromium)
	$(PY) -m tests.browser.screenshots

pr: lint validate test

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(SCHEMATHESIS_VENV) $(NPM_TOOLS) .aws-sam .pytest_cache .mypy_cache .ruff_cache
