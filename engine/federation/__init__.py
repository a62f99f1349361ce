"""Federation: BOSS sites exchanging traceability events
(``docs/federation.md``).

* ``engine.federation.settings``: the ``[federation]`` section and its
  peers (``load_federation``);
* ``engine.federation.bridge``: ``boss federate serve``, CloudEvents over
  HTTP out to the peers (a durable queue per peer) and in from them
  (authenticated, domain-checked, filtered, validated, dead-lettered with
  the reason when refused).
"""

from __future__ import annotations

from engine.federation.bridge import (
    FederationBridge,
    Inbound,
    Receiver,
    Sender,
    create_app,
    event_domain,
    sign,
    verify,
)
from engine.federation.settings import (
    FederationSettings,
    PeerFilter,
    PeerSettings,
    load_federation,
)

__all__ = [
    "FederationBridge",
    "FederationSettings",
    "Inbound",
    "PeerFilter",
    "PeerSettings",
    "Receiver",
    "Sender",
    "create_app",
    "event_domain",
    "load_federation",
    "sign",
    "verify",
]
