"""What every layer may use: settings, logs, progress, timings, the warehouse connection, alerts, metrics."""
