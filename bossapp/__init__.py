"""The applications over the engine and the web UI: the ``boss`` command
(``bossapp.cli``) and ``boss demo`` (``bossapp.demo``). (The in-process harness
for process authors stays ``engine.testing.ProcessHarness``, where the
process language's contract names it.)

The package is not called ``boss``: that is the name of the real BOSS
standard workflow's own package (``boss.obs``, ``boss.bz``, ``boss.rpm``...),
which a BOSS site's participants import and must go on importing unchanged.

Nothing below imports this package: ``engine`` and ``webui`` are libraries
to it (the import contracts in ``pyproject.toml`` keep it so).
"""
