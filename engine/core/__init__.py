"""The sans-IO core: the process language and its interpreter.

Everything here is pure: it imports nothing that does I/O (no redis, kombu,
celery, flask, no sockets, files only in ``loader.load_file``), keeps no
process-wide settings and reads no clock. The adapters around it
(``engine.engine``, the stores, the worker) give it a run's state and one
message and carry out the effects it returns. The boundary is checked by the
test suite (``tests/unit/test_boundaries.py``: the import contracts in
``pyproject.toml`` and a fresh-interpreter import).

Modules: ``states`` (run and step states), ``definition`` (the loaded model),
``loader`` (YAML → ``Definition``), ``conditions``, ``substitution``,
``durations``, ``merge``, ``effects`` (what the core asks the adapters to
do), ``lifecycle`` (the shared state machine), ``registrations``
(participant-name matching), ``listeners`` (which ``listen`` a workitem
wakes), ``messages`` (the message vocabulary), ``runstate`` (the run
document, its version and accessors) and ``interpreter``.
"""
