# The two commands a newcomer needs: `make demo` and `make test`.
# Both run scripts/bootstrap first, which installs what is missing.
GK_PREFIX ?= /opt/ssh-gatekeeper-dev
VENV := $(GK_PREFIX)/venv
LINT := $(GK_PREFIX)/lint
export GK_PREFIX

.PHONY: bootstrap test test-debian13 lint demo schema bench deb test-installed

bootstrap:
	@scripts/bootstrap >/dev/null

test: bootstrap
	$(VENV)/bin/pytest

# The same `make test` inside a cached Debian 13 (trixie) chroot (root; docs/ci.md).
test-debian13:
	scripts/test-debian13

lint: bootstrap
	$(LINT)/bin/ruff check .
	$(LINT)/bin/ruff format --check .
	$(LINT)/bin/mypy
	$(LINT)/bin/lint-imports

demo: bootstrap
	$(VENV)/bin/gatekeeperctl demo

schema: bootstrap
	$(VENV)/bin/gatekeeperctl schema > etc/gatekeeper.schema.json

bench: bootstrap
	bench/run $(BENCH_ARGS)

deb:
	packaging/build-deb dist/

test-installed:
	packaging/test-installed tests/e2e
