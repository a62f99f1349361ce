"""The Flask admin web UI (watch, launch, operate and trace)."""
