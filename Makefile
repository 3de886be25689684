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
DEVSERVER_ARGS ?=

.PHONY: venv dev test test-fast fuzz lint validate scan build deploy bench screenshots clean pr \
	requirements generate-requirements sam-cli schemathesis

$(STAMP):
	@test -x $(PY) || $$(scripts/python.sh) -m venv $(VENV)
	@echo "installing pinned dependencies into $(VENV) ..."
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

dev: venv ## the local stack: WebSocket + HTTP API, demo page, embedded AWS (moto)
	$(PY) -m devserver $(DEVSERVER_ARGS)

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

test: venv $(CHECKOV_STAMP) $(SCHEMATHESIS_STAMP) ## the whole suite: unit, integration, e2e, browser, schemathesis
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: venv ## unit + integration only
	$(PY) -m pytest tests/unit tests/integration $(PYTEST_ARGS)

fuzz: venv $(SCHEMATHESIS_STAMP) ## the fuzz suites with many more examples than `make test` runs
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-400} $(PY) -m pytest -m fuzz -p no:xdist -s

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
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(SCHEMATHESIS_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
