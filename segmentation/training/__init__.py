"""Training glue on Lightning: checkpoint files, default callbacks, resume checks and records, prediction writing."""
