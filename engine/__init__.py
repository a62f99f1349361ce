"""BOSS's process engine: the language loader, the sans-IO interpreter, the
run stores, the engine adapter, the test harness and the ``boss`` command."""

__version__ = "0.1.0"
