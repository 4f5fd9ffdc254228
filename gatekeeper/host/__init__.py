"""Host-side commands: ``share``, ``who``, ``kick`` and the tmux control they share."""
