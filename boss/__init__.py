"""The applications over the engine and the web UI: the ``boss`` command
(``boss.cli``) and ``boss demo`` (``boss.demo``). (The in-process harness
for process authors stays ``engine.testing.ProcessHarness``, where the
process language's contract names it.)

Nothing below imports this package: ``engine`` and ``webui`` are libraries
to it (the import contracts in ``pyproject.toml`` keep it so).
"""
