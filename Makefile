# kms-guard: every target sets up what it needs itself (uv from PyPI if missing, then .venv from uv.lock).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)
# cdk.json runs the app with `uv run`: a uv that .tools/ holds must be found by the CDK CLI too (appended, so a uv
# already on PATH wins and .tools/bin/python never shadows the system python3).
export PATH := $(PATH):$(CURDIR)/.tools/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: help setup test lint typecheck unit demo synth deploy-local bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

.tools/bin/uv:
	@echo "uv not found: installing uv $(UV_VERSION) from PyPI into .tools/"
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

$(STAMP): pyproject.toml uv.lock | $(UV)
	"$(UV)" sync --frozen
	@touch $(STAMP)

NODE_STAMP := node_modules/.installed
EXAMPLE_CONTEXT := -c keyArn=arn:aws:kms:us-west-2:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab \
	-c regions=us-west-2,us-east-1,eu-west-1 -c alertEmails=security@example.com \
	-c remediation=restore-statement -c restoreKeyState=true

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

setup: $(STAMP) $(NODE_STAMP) ## create .venv from uv.lock and install the pinned CDK CLI

lint: $(STAMP) ## ruff
	"$(UV)" run --frozen ruff check .
	"$(UV)" run --frozen ruff format --check .

typecheck: $(STAMP) ## mypy, strict (the files are listed in pyproject.toml)
	"$(UV)" run --frozen mypy

test: lint typecheck $(NODE_STAMP) ## ruff, mypy and the whole pytest suite (deploy-local included)
	"$(UV)" run --frozen pytest

unit: $(STAMP) ## the fast unit tests only
	"$(UV)" run --frozen pytest tests/unit -q

demo: $(STAMP) ## the guard end to end against an embedded simulated AWS account
	"$(UV)" run --frozen kms-guard demo

CDK_OUT ?= cdk.out

synth: $(STAMP) $(NODE_STAMP) ## cdk synth with example context (no AWS account needed)
	npx --no-install cdk synth --quiet --output "$(CDK_OUT)" $(EXAMPLE_CONTEXT)
	@echo "templates in $(CDK_OUT)/"

deploy-local: $(STAMP) $(NODE_STAMP) ## bootstrap, deploy, redeploy, run the handlers, destroy: the real CDK CLI on moto
	"$(UV)" run --frozen pytest tests/deploy -q

bench: $(STAMP) ## the benchmark: writes bench/results.json and prints the table
	"$(UV)" run --frozen python -m bench.run

clean: ## remove generated files
	rm -rf $(VENV) .tools node_modules cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
