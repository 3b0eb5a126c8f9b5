"""The pure progress model: no I/O, no threads."""
