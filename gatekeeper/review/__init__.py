"""Audit review for admins: reading the journal back (``gatekeeperctl audit``)."""
