"""gatekeeperctl: the admin and host commands (never on the per-login path)."""
