"""Small shared pieces every layer may use: errors, logs, stopping, paths, statistics, devices,
torch's private names."""
