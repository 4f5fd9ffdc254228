"""gatekeeperctl: argument parsing and dispatch to the role packages (never on the login path)."""
