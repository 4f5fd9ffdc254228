"""Deployment: the sshd configuration, ``doctor`` and the demo."""
