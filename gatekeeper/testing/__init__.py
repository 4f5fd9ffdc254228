"""The real-machine harness: journald namespaces, loopback sshd, throwaway accounts, polling.

One implementation used by the test tiers (through ``tests/gktest.py`` and
``tests/gksshd.py``), ``gatekeeperctl demo`` and ``bench/run``. Standard
library only, and no pytest: the demo runs from the packaged venv, which has
no test dependencies. Nothing here is on the login path (an import-linter
contract keeps ``gatekeeper.login`` from importing it). The package's
``__init__`` imports nothing.
"""
