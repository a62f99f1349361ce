"""Example participants (see ``docs/participants.md``)."""
