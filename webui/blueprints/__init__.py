"""The web UI's blueprints: ``auth``, ``pages``, ``api`` (and template filters)."""
