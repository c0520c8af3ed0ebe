"""Optuna's trial lifecycle, written once: ask under the lock, heartbeat, report, prune, tell; samplers and pruners."""
