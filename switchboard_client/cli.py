"""``python -m switchboard_client chat --user alice [--to bob] [--url ws://… --token …]``

Lines typed on stdin are sent to the current conversation; incoming messages, presence,
typing and read receipts are printed. Commands: ``/to USER[,USER…]`` (open the
conversation with them), ``/conv ID`` (switch), ``/list``, ``/requests`` (message
requests: conversations strangers started with you), ``/accept [ID]`` and
``/decline [ID]`` (a request; the current conversation without ID: the other members
see your presence, typing and receipts only once you accept or reply), ``/quit``. End of
input (Ctrl-D) quits. Without ``--token`` (or ``$SWITCHBOARD_TOKEN``) a dev token is minted
for ``--user`` with the devserver's dev secret (run from the repository root).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from switchboard_client.client import Client
from switchboard_client.errors import AuthenticationFailed, SwitchboardClientError
from switchboard_client.models import Event

DEFAULT_URL = "ws://127.0.0.1:8080/dev"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m switchboard_client")
    commands = parser.add_subparsers(dest="command", required=True)
    chat = commands.add_parser("chat", help="chat from the terminal")
    chat.add_argument("--user", help="your user id (needed to mint a dev token)")
    chat.add_argument(
        "--url",
        default=os.environ.get("SWITCHBOARD_URL", DEFAULT_URL),
        help=f"WebSocket URL (default $SWITCHBOARD_URL or {DEFAULT_URL})",
    )
    chat.add_argument(
        "--token",
        default=os.environ.get("SWITCHBOARD_TOKEN"),
        help="JWT (default $SWITCHBOARD_TOKEN, else a devserver dev token for --user)",
    )
    chat.add_argument("--admin", action="store_true", help="mint the dev token with admin")
    target = chat.add_mutually_exclusive_group()
    target.add_argument("--to", help="open the conversation with these users (comma-separated)")
    target.add_argument("--conversation", help="the conversation id to write to")
    chat.add_argument("--listing", help="listing id of the conversation opened with --to")
    return parser


def _dev_token(user: str, admin: bool) -> str:
    try:
        from devserver.tokens import mint
    except ImportError as exc:
        raise SystemExit(
            f"no --token given and the devserver is not importable ({exc}): "
            "pass --token or run from the repository root"
        ) from exc
    return mint(user, admin=admin)


# C0 and C1 controls but the newline (escape sequences, BEL, CR, CSI), and the bidi
# overrides and isolates: they would reach the terminal as instructions.
_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` as the terminal may show it: whatever others wrote (a message, a user id)
    is printed as text, never obeyed (an OSC 52 clipboard write, a title, a carriage
    return and "erase line" overwriting what is shown), each control shown escaped; a
    line after a newline is indented, so a message cannot forge another's line."""
    escaped = _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)
    return escaped.replace("\n", "\n    ")


class Chat:
    """The terminal session: one client, a current conversation, printed events."""

    def __init__(self, client: Client, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.me = client.user_id
        self.current: str | None = None
        self._to_read: dict[str, int] = {}
        self._read_wakeup = asyncio.Event()

    def say(self, text: str) -> None:
        self.out.write(terminal_safe(text) + "\n")
        self.out.flush()

    def on_event(self, event: Event) -> None:
        data = event.data
        who = data.get("userId")
        if event.message is not None:
            message = event.message
            if message.sender_id == self.me:
                return  # our own, from another device
            self.say(
                f"[{message.conversation_id} #{message.seq}] {message.sender_id}: {message.body}"
            )
            if self.current is None:
                self.current = message.conversation_id  # reply to whoever wrote first
            self._to_read[message.conversation_id] = message.seq
            self._read_wakeup.set()
        elif event.type == "conversation:request":
            conversation_id = data.get("conversationId")
            self.say(
                f"* request from {data.get('fromUserId')} in {conversation_id}: "
                f"/accept {conversation_id} or /decline {conversation_id}"
            )
        elif event.type == "conversation:accepted" and who != self.me:
            self.say(f"* {who} accepted {data.get('conversationId')}")
        elif event.type == "presence":
            self.say(f"* {who} is {'online' if data.get('online') else 'offline'}")
        elif event.type == "typing":
            state = "is typing" if data.get("state") == "start" else "stopped typing"
            self.say(f"* {who} {state} in {data.get('conversationId')}")
        elif event.type == "message:read" and who != self.me:
            self.say(f"* {who} read {data.get('conversationId')} up to #{data.get('seq')}")
        elif event.type == "client:connected":
            again = "re" if int(data.get("connections", 1)) > 1 else ""
            self.say(f"* {again}connected as {self.me}")
        elif event.type == "client:disconnected":
            self.say(f"* disconnected ({data.get('code')}): reconnecting")

    async def mark_read(self) -> None:
        """Read receipts for what was printed, coalesced per conversation."""
        while True:
            await self._read_wakeup.wait()
            self._read_wakeup.clear()
            pending, self._to_read = self._to_read, {}
            for conversation_id, seq in pending.items():
                with contextlib.suppress(SwitchboardClientError):
                    await self.client.mark_read(conversation_id, seq)

    async def open_with(self, users: str, listing: str | None = None) -> None:
        members = [u.strip() for u in users.split(",") if u.strip()]
        reply = await self.client.create_conversation(members, listing_id=listing)
        self.current = reply.conversationId
        self.say(f"* writing to {self.current} ({', '.join(members)})")

    async def handle(self, line: str) -> bool:
        """One input line; False to quit."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return True
        command, _, rest = line.partition(" ")
        if command == "/quit":
            return False
        if command == "/to" and rest.strip():
            await self.open_with(rest)
        elif command == "/conv" and rest.strip():
            self.current = rest.strip()
            self.say(f"* writing to {self.current}")
        elif command in ("/list", "/requests"):
            requests = command == "/requests"
            async for c in self.client.iter_conversations(requests=requests):
                members = ", ".join(m for m in c.members if m != self.me)
                kind = "request " if requests else ""
                self.say(f"* {kind}{c.conversationId} with {members}: {c.unread} unread")
        elif command in ("/accept", "/decline"):
            conversation_id = rest.strip() or self.current
            if conversation_id is None:
                self.say(f"* {command} ID (see /requests)")
                return True
            membership = self.client.membership
            act = membership.accept if command == "/accept" else membership.decline
            changed = (await act(conversation_id)).changed
            done = "accepted" if command == "/accept" else "declined"
            self.say(
                f"* {done} {conversation_id}" if changed else f"* no request {conversation_id}"
            )
        elif self.current is None:
            self.say("* no conversation yet: /to USER (or wait for someone to write)")
        else:
            sent = await self.client.send_message(self.current, line)
            self.say(f"* sent #{sent.seq} to {self.current}")
        return True


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """stdin lines through a daemon thread (works for ttys, pipes and files alike, and
    never keeps the process alive at exit); None at end of input."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def chat(args: argparse.Namespace) -> int:
    if not args.token and not args.user:
        print("chat: --user or --token is required", file=sys.stderr)
        return 2
    token = args.token or _dev_token(args.user, args.admin)
    client = Client(args.url, token, user_id=args.user, user_agent="switchboard-cli")
    session = Chat(client, sys.stdout)
    client.on(None, session.on_event)
    try:
        await client.connect()
    except AuthenticationFailed as exc:
        print(f"chat: {exc}", file=sys.stderr)
        await client.close()
        return 2
    except SwitchboardClientError as exc:
        print(f"chat: cannot connect to {args.url}: {exc}", file=sys.stderr)
        await client.close()
        return 1
    reader = asyncio.create_task(session.mark_read())
    try:
        if args.to:
            await session.open_with(args.to, args.listing)
        elif args.conversation:
            session.current = args.conversation
        lines = _stdin_lines(asyncio.get_running_loop())
        while (line := await lines.get()) is not None:
            try:
                if not await session.handle(line):
                    break
            except SwitchboardClientError as exc:
                session.say(f"! {exc}")
        return 0
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(chat(args))
    except KeyboardInterrupt:
        return 130
