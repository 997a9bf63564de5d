"""The shared kernel: database, tasks, cache, clock, errors, crypto, text, uploads. It imports no context."""
