"""SkyNET: the participant pool manager (``skynet`` CLI and REST API over supervisor)."""
