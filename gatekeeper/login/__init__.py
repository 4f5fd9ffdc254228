"""The per-login path: what sshd runs for every guest login, stage by stage.

Nothing here imports the host, review, deployment or CLI code. Importing this
package imports nothing: each stage module is imported only where it is used.
"""
