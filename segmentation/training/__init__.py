"""Training on Lightning: checkpoint files (atomic, safely loaded), resume rules and records, the default
callbacks (checkpoints, LR, epoch timer and ETA bar, summary, early stopping, previews), preemption and requeue,
the run lock, DDP agreement checks, `seg test` scoring and `seg validate`'s record, and prediction writing."""
