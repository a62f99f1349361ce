"""Launchers: event sources that launch processes.

* ``base``: the interface (``RawEvent``, ``NormalisedEvent``, ``Source``,
  ``MalformedEvent``), wfid and Eiffel id derivation;
* ``launcher``: normalised events to launch items (process store, rules),
  published with the source's Eiffel event as their cause;
* ``rules`` (the rules file); the process store they read
  (``<store>/<Project/Path>/<LABEL>.<name>.yaml`` + ``.conf``,
  ``enable_project``) is ``engine.process_store``;
* the sources: ``obs`` (the OBS message bus, legacy BOSS items), ``github``,
  ``gitlab`` (webhooks, served by ``http``), ``gerrit`` (stream-events),
  ``eiffel`` (an adapter over ``engine.trace.triggers``);
* ``traceability``: which Eiffel event each source event is;
* ``settings``: the ``[launchers]`` configuration section.

``docs/launchers.md`` describes them.
"""

from engine.launchers.base import MalformedEvent, NormalisedEvent, RawEvent, Source

__all__ = ["MalformedEvent", "NormalisedEvent", "RawEvent", "Source"]
