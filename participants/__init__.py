"""Participants: the SDK a participant author imports and the standard participants.

The SDK and runtime arrive with the distributed-runtime issue; the engine's
in-process harness (``engine.testing``) already runs Python callables as
participants.
"""
