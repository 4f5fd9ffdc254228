"""The policy file: its frozen model, the pydantic loader, the validated cache, the schema.

``model`` and ``cache`` run on every login; ``loader`` only on a cache miss.
This package imports nothing itself, so ``gatekeeper.policy.model`` stays cheap.
"""
