"""ssh-gatekeeper: one audited ForceCommand for shared tmux sessions over SSH.

Importing this package must stay free: it is on the per-login path, so nothing
here imports more than the standard library's smallest modules.
"""

__version__ = "0.1.0"
