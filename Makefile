# aistack — see README.md. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
INFRA       ?= infra.yml
PLAYBOOK    := $(BIN)/ansible-playbook
ANSIBLE_ENV := ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg
ARGS        ?=

$(BIN)/aistack: requirements.txt pyproject.toml stt/pyproject.toml
	@scripts/setup-venv "$(PYTHON)" "$(VENV)"

.PHONY: help
help: ## Show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Create .venv with the pinned controller tools (Ansible, pylxd, linters, test tools)
	@scripts/setup-venv "$(PYTHON)" "$(VENV)"

.PHONY: sync
sync: $(BIN)/aistack ## Write inventory/, group_vars/, host_vars/ from infra.yml
	$(BIN)/aistack sync --infra $(INFRA) $(ARGS)

.PHONY: sync-dry
sync-dry: $(BIN)/aistack ## Show what `make sync` would change, write nothing
	$(BIN)/aistack sync --infra $(INFRA) --dry-run $(ARGS)

.PHONY: validate
validate: $(BIN)/aistack ## Check infra.yml and report every error
	$(BIN)/aistack validate $(INFRA)
