# The two commands a newcomer needs: `make demo` and `make test`.
# Both run scripts/bootstrap first, which installs what is missing.
GK_PREFIX ?= /opt/ssh-gatekeeper-dev
VENV := $(GK_PREFIX)/venv
export GK_PREFIX

.PHONY: bootstrap test lint demo schema

bootstrap:
	@scripts/bootstrap >/dev/null

test: bootstrap
	$(VENV)/bin/pytest

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	cd $(CURDIR) && $(VENV)/bin/lint-imports

demo: bootstrap
	$(VENV)/bin/gatekeeperctl demo

schema: bootstrap
	$(VENV)/bin/gatekeeperctl schema > etc/gatekeeper.schema.json
