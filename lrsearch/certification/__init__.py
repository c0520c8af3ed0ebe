"""The search's answer checked at fresh seeds against tuned controls; the replay beside its baselines."""
