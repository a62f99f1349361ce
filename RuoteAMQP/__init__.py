"""python-ruote-amqp's API, for participants written for BOSS.

BOSS's participants (the BOSS standard workflow and users' own) import
``from RuoteAMQP import Workitem``, ``from RuoteAMQP.workitem import
Workitem`` and ``from RuoteAMQP.launcher import Launcher``. This package
gives them those names on top of this project, so they run unchanged under
``boss-participant``:

* ``Workitem`` is ``participants.Workitem`` itself (the class the runtime
  hands to ``handle_wi``, so ``isinstance(wi, Workitem)`` holds), with
  python-ruote-amqp's attribute-style ``fields``/``params``, ``fei``,
  ``to_h()``, ``dump()``, ``Workitem(json_text)``, settable ``error`` and
  ``forget``, ``is_cancel`` (see ``participants/workitem.py``);
* ``FlowExpressionId``: the ``fei`` (a dict with attributes);
* ``Launcher``: launches a process through BOSS's broker
  (``RuoteAMQP.launcher``);
* ``Participant``: the old standalone AMQP participant base class, with
  ``consume()`` and ``self.workitem``, run by BOSS's participant runtime
  (``RuoteAMQP.participant``).

Not provided: pika/amqplib connection objects, ``conn=`` to the Launcher,
the ``ruote_workitems`` queue name (BOSS's engine queue is used), and
python-ruote-amqp's ``Workitem.__eq__`` (it compared nothing useful).
"""

from __future__ import annotations

from RuoteAMQP.launcher import Launcher
from RuoteAMQP.participant import Participant
from RuoteAMQP.workitem import FlowExpressionId, Workitem

__all__ = ["FlowExpressionId", "Launcher", "Participant", "Workitem"]
