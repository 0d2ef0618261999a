"""The bottom layer: what every other layer may use. Errors and exit statuses, shared constants, the `seg`
logger, durable atomic writes and storage checks, the content fingerprint of caches, file locks (shared work,
the run directory), the run record a fit hands to `seg batch`, fault points for the crash tests — none of which
imports torch, Lightning or MONAI — and `internals`, the one door to private names of Lightning and torch."""
