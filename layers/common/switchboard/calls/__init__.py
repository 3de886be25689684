"""Calls, one module per role:

- ``model``: the call, its participants and the pure state machine (typed refusals);
- ``pushes``: which frames go to whom after a transition (the push plan);
- ``service``: the actions (read, transition, conditional write, push);
- ``repository``: the Calls table (call items and per-user active-call items);
- ``teardown``: a call's part ends when the connection in it closes.

The ring-timeout message and its queue are with the other SQS producers (queues.py).
"""

from switchboard.calls.model import (
    AlreadyInCall,
    Call,
    CallConflict,
    CalleeBusy,
    CallFull,
    CallState,
    Participant,
    PartState,
    add_pending_candidate,
    announced_recording_ms,
    decline,
    invite,
    join,
    leave,
    miss,
    separate,
    set_media,
    set_recording,
    start,
)
from switchboard.calls.pushes import Push, incoming_frame, pushes

__all__ = [
    "AlreadyInCall",
    "Call",
    "CallConflict",
    "CallFull",
    "CallState",
    "CalleeBusy",
    "PartState",
    "Participant",
    "Push",
    "add_pending_candidate",
    "announced_recording_ms",
    "decline",
    "incoming_frame",
    "invite",
    "join",
    "leave",
    "miss",
    "pushes",
    "separate",
    "set_media",
    "set_recording",
    "start",
]
