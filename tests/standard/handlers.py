"""Site participants the scenario tests stand in for: a build and a test
(each community, each site has its own; the standard processes name them
by the fields ``build_participant`` and ``test_participant``)."""

from __future__ import annotations

from typing import Any


class Build:
    """Records what it built in ``built``."""

    def handle_wi(self, wi: Any) -> None:
        wi.fields["built"] = {
            "project": wi.params.get("project"),
            "revision": wi.params.get("revision"),
        }


class Test:
    """Passes, unless the field ``break_tests`` is set."""

    def handle_wi(self, wi: Any) -> None:
        wi.result = not wi.fields.get("break_tests")
        wi.msg.append(
            f"tests of {wi.params.get('artifact')}: {'passed' if wi.result else 'FAILED'}"
        )
