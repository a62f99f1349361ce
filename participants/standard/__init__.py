"""BOSS's standard participants: the steps most CI processes need.

Each module is one participant (or one family served by one pool through a
regular-expression registration); run one with ``boss-participant`` and an
INI file naming it by module (``code = participants.standard.notify_irc``).
``docs/standard-participants.md`` lists every participant with its params,
the fields it reads and writes and its configuration keys; each module's
docstring says the same, with an example INI (also in
``participants/standard/*.ini.example``).

| module | participants |
|---|---|
| ``notify_irc`` | ``notify_irc``: post lines to an IRC channel |
| ``notify`` | ``notify``, ``notify_admin``: mail over SMTP from templates |
| ``obsticket`` | ``obsticket``: a lock on an OBS project across runs |
| ``notices`` | ``built_notice_*``, ``request_notice_*``, any ``*_notice_*``: catch |
|  | participants that wake ``listen`` steps |
| ``obs_client`` | ``ObsClient``: the OBS REST API (no participant) |
| ``obs_request`` | ``get_request``, ``change_request_state`` |
| ``obs_checks`` | ``check_*``: the prechecks of a submit request |
| ``git_source`` | ``git_clone``, ``git_commits``, ``git_source_change`` |
| ``eiffel_publish`` | ``artifact_created``, ``artifact_published``, |
|  | ``composition_defined`` (``baseline_defined``), ``confidence_level_modified`` |
"""
