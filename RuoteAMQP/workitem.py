"""``RuoteAMQP.workitem``: the workitem classes under python-ruote-amqp's names.

``Workitem`` is ``participants.workitem.Workitem`` (what the participant
runtime hands to ``handle_wi``); ``DictAttrProxy`` is the proxy nested
dicts of the fields come as; ``FlowExpressionId`` is the ``fei``. See the
``participants.workitem`` docstring for what is supported.
"""

from __future__ import annotations

from participants.workitem import AttrProxy, Fields, FlowExpressionId, Workitem

#: python-ruote-amqp's name for the nested-dict attribute proxy
DictAttrProxy = AttrProxy

__all__ = ["DictAttrProxy", "Fields", "FlowExpressionId", "Workitem"]
