"""Eiffel publishers: steps that record what a process made or decided.

Each emits one Eiffel event with ``wi.emit`` (the runtime publishes it on
the traceability bus just before the reply; it is linked to the step by
CONTEXT, and its id is derived from the step, so a step done again after a
crash records it once), and writes the event's id into a field so later
steps can link to it.

An id param (``composition``, ``artifact``, ``subject``, ``elements``, ...)
is an event id, a list of them, or ``$f:field`` in the definition (the raw
field). When a param is missing the participant reads the field in the
"default" column.

``artifact_created`` (ArtifactCreated)
    Params: ``identity`` (a purl, required), ``name``, ``file`` (a file name
    or a list), ``composition`` (COMPOSITION; default the ``composition``
    field), ``cause``, ``into``. Writes ``artifact`` (the id) and
    ``artifact_identity``.

``artifact_published`` (ArtifactPublished)
    Params: ``artifact`` (ARTIFACT; default the ``artifact`` field), ``uri``
    and ``type`` (PLAIN), or ``locations`` (``[{type, uri}]``). Writes
    ``publication``.

``composition_defined`` / ``baseline_defined`` (CompositionDefined)
    Params: ``name`` (required), ``version``, ``elements`` (ELEMENT; default
    the ``artifact`` field), ``previous`` (PREVIOUS_VERSION), ``into``.
    Writes ``composition`` (``baseline`` for ``baseline_defined``).

``confidence_level_modified`` (ConfidenceLevelModified)
    Params: ``name`` (or ``level``, required), ``value`` (SUCCESS, FAILURE,
    INCONCLUSIVE; default from the ``status`` field: FAILURE and ERROR give
    FAILURE, anything else SUCCESS), ``subjects`` (or ``subject``; SUBJECT;
    default the ``artifact`` field), ``issuer`` (a name), ``into``. Writes
    ``confidence_level`` (the id), appends ``{name, value, id}`` to
    ``confidence_levels``; ``result`` is true for SUCCESS.

Every publisher also takes ``custom`` (a mapping, emitted as
``customData``) and ``cause`` (ids linked as CAUSE, where the event type
allows it). ``into`` names the field to write the id to instead of the
default. A missing required param or id is an error of the step naming it.

Configuration (``[eiffel_publish]``): ``issuer`` (the default issuer name of
confidence levels; default none).

Example INI (one pool for the family)::

    [participant]
    name = eiffel_publish
    regexp = (artifact|composition|baseline|confidence_level)_.*
    register = true
    code = participants.standard.eiffel_publish
    class = EiffelPublish
"""

from __future__ import annotations

from typing import Any

from participants.handler import LifecycleControl, Participant
from participants.standard.config import Section
from participants.workitem import Workitem

__all__ = [
    "ArtifactCreated",
    "ArtifactPublished",
    "BaselineDefined",
    "CompositionDefined",
    "ConfidenceLevelModified",
    "EiffelPublish",
]

_VALUES = {
    "SUCCESS": "SUCCESS",
    "FAILURE": "FAILURE",
    "ERROR": "FAILURE",
    "INCONCLUSIVE": "INCONCLUSIVE",
}


def _ids(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return [part for part in str(value).replace(",", " ").split() if part]


class _Publisher(Participant):
    issuer = ""

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            self.issuer = Section(ctrl.config, "eiffel_publish").get("issuer")

    @staticmethod
    def ids(wi: Workitem, *names: str, default_field: str | None = None) -> list[str]:
        for name in names:
            if wi.params.get(name):
                return _ids(wi.params[name])
        return _ids(wi.fields.get(default_field)) if default_field else []

    @staticmethod
    def required(wi: Workitem, *names: str) -> str:
        for name in names:
            if wi.params.get(name) not in (None, ""):
                return str(wi.params[name])
        raise ValueError(f"{wi.participant_name}: params.{names[0]} is required")

    @staticmethod
    def custom(wi: Workitem) -> dict[str, Any] | None:
        custom = wi.params.get("custom")
        if custom is not None and not isinstance(custom, dict):
            raise ValueError(f"{wi.participant_name}: params.custom must be a mapping")
        return custom or None

    @staticmethod
    def into(wi: Workitem, default: str) -> str:
        return str(wi.params.get("into") or default)


class ArtifactCreated(_Publisher):
    def handle_wi(self, wi: Workitem) -> None:
        from engine.trace import eiffel

        identity = self.required(wi, "identity")
        files = wi.params.get("file")
        composition = self.ids(wi, "composition", default_field="composition")
        event = wi.emit(
            eiffel.artifact_created(
                identity,
                name=wi.params.get("name"),
                file_information=[{"name": f} for f in _ids(files)] or None,
                composition=composition[0] if composition else None,
                cause=self.ids(wi, "cause") or None,
                custom_data=self.custom(wi),
            )
        )
        wi.fields[self.into(wi, "artifact")] = event["meta"]["id"]
        wi.fields["artifact_identity"] = identity
        wi.result = True


class ArtifactPublished(_Publisher):
    def handle_wi(self, wi: Workitem) -> None:
        from engine.trace import eiffel

        artifact = self.ids(wi, "artifact", default_field="artifact")
        if not artifact:
            raise ValueError(
                f"{wi.participant_name}: no artifact (params.artifact or the artifact field)"
            )
        locations = wi.params.get("locations")
        if not locations:
            uri = self.required(wi, "uri")
            locations = [{"type": str(wi.params.get("type") or "PLAIN"), "uri": uri}]
        event = wi.emit(
            eiffel.artifact_published(
                artifact[0],
                locations,
                cause=self.ids(wi, "cause") or None,
                custom_data=self.custom(wi),
            )
        )
        wi.fields[self.into(wi, "publication")] = event["meta"]["id"]
        wi.result = True


class CompositionDefined(_Publisher):
    field = "composition"

    def handle_wi(self, wi: Workitem) -> None:
        from engine.trace import eiffel

        name = self.required(wi, "name")
        elements = self.ids(wi, "elements", "element", default_field="artifact")
        previous = self.ids(wi, "previous")
        version = wi.params.get("version")
        event = wi.emit(
            eiffel.composition_defined(
                name,
                elements,
                version=str(version) if version not in (None, "") else None,
                previous=previous[0] if previous else None,
                cause=self.ids(wi, "cause") or None,
                custom_data=self.custom(wi),
            )
        )
        wi.fields[self.into(wi, self.field)] = event["meta"]["id"]
        wi.result = True


class BaselineDefined(CompositionDefined):
    field = "baseline"


class ConfidenceLevelModified(_Publisher):
    def handle_wi(self, wi: Workitem) -> None:
        from engine.trace import eiffel

        name = self.required(wi, "name", "level")
        subjects = self.ids(wi, "subjects", "subject", default_field="artifact")
        if not subjects:
            raise ValueError(
                f"{wi.participant_name}: no subject (params.subjects or the artifact field)"
            )
        raw = wi.params.get("value")
        if raw in (None, ""):
            raw = _VALUES.get(str(wi.fields.get("status") or "SUCCESS").upper(), "SUCCESS")
        value = str(raw).upper()
        if value not in ("SUCCESS", "FAILURE", "INCONCLUSIVE"):
            raise ValueError(
                f"{wi.participant_name}: value {raw!r} is not SUCCESS, FAILURE or INCONCLUSIVE"
            )
        issuer = wi.params.get("issuer") or self.issuer
        event = wi.emit(
            eiffel.confidence_level_modified(
                name,
                value,
                subjects,
                issuer={"name": str(issuer)} if issuer else None,
                cause=self.ids(wi, "cause") or None,
                custom_data=self.custom(wi),
            )
        )
        eid = event["meta"]["id"]
        wi.fields[self.into(wi, "confidence_level")] = eid
        levels = wi.fields.get("confidence_levels")
        if not isinstance(levels, list):
            levels = wi.fields["confidence_levels"] = []
        levels.append({"name": name, "value": value, "id": eid})
        wi.result = value == "SUCCESS"


class EiffelPublish(_Publisher):
    """The family in one pool: register the regexp of their names; it runs
    the one the workitem's participant name says."""

    BY_NAME: dict[str, type[_Publisher]] = {
        "artifact_created": ArtifactCreated,
        "artifact_published": ArtifactPublished,
        "composition_defined": CompositionDefined,
        "baseline_defined": BaselineDefined,
        "confidence_level_modified": ConfidenceLevelModified,
    }

    def handle_wi(self, wi: Workitem) -> None:
        cls = self.BY_NAME.get(str(wi.participant_name))
        if cls is None:
            raise ValueError(
                f"no Eiffel publisher {wi.participant_name!r}; known: {', '.join(self.BY_NAME)}"
            )
        one = cls()
        one.issuer = self.issuer
        one.handle_wi(wi)
