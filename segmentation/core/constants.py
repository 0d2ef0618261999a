"""Names that several layers must agree on: the monitored metric, TensorBoard tags, checkpoint keys."""

MONITOR = "val/dice"  # what the plateau schedule, best.ckpt and early stopping watch (mode max)
LR_TAG = "lr"
EPOCH_TAG = "epoch"  # Lightning's own per-step epoch scalar
EPOCH_SECONDS_TAG = "time/epoch_seconds"
CHECKPOINT_RECORD_KEY = "seg"  # the checkpoint entry holding the run's composed config (training.records)
CACHE_FOLDER_NAME = ".seg_cache"  # default cache folder inside a dataset root
PREEMPTED_EXIT = 75  # EX_TEMPFAIL: a preempted fit or batch ("try again": the same command continues it)
VERSION = "0.1.0"  # seg's version (pyproject.toml's; tests/test_packaging.py keeps the two equal): in every checkpoint
FOLD_MANIFEST = "manifest.json"  # the list of a fold run's kept label maps (training.fold_predictions, app.cv_*)
