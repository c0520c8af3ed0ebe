"""Open or resume a study, run its workers on their devices, handle Ctrl-C."""
