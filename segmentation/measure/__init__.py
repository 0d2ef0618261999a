"""Measurement on the user's machine: `seg estimate` (a run's time from real steps) and `seg bench` (data
pipeline, network ceiling, seg's Lightning loop and a plain loop side by side). Above `training`, below `app`."""
