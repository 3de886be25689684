"""Files and former members: a member who left (or was removed, or declined) keeps the
conversation up to their leave - history, sync, search - and so the files its messages
attached up to there, and nothing shared after.

``upload:get`` with a ``conversationId`` hands out download URLs to whoever has a member
item there. A former member keeps theirs (it holds where they left), so without the time
of the share they got any file shared there *after* they left: an id they learnt
elsewhere (the same file sent to them in a 1:1 before), or guessed, named with the
conversation they left. Each upload keeps the seq of its first share in each
conversation; a former member gets a file only if that seq is at or below their leave.

The handlers run in-process under moto, the files really uploaded and processed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from switchboard.dal.uploads import MAX_SHARES

from tests.integration.conftest import Stack
from tests.integration.test_messaging import Client, new_conversation
from tests.integration.test_uploads import run_processor
from tests.support.effects import InProcess
from tests.support.images import http, pdf_of_size

VOICE_WEBM = (Path(__file__).parent.parent / "support" / "media" / "voice.webm").read_bytes()


@dataclass
class Person:
    """One user with a connection to the message function and one to the upload function."""

    chat: Client
    files: Client

    @property
    def user_id(self) -> str:
        return self.chat.user_id


@pytest.fixture(scope="module")
def apps(stack: Stack) -> dict[str, ModuleType]:
    return {
        "message": stack.handler("MessageFunction"),
        "upload": stack.handler("UploadFunction"),
        "connect": stack.handler("ConnectionFunction"),
        "processor": stack.handler("UploadProcessorFunction"),
    }


@pytest.fixture
def people(stack: Stack, apps: dict[str, ModuleType]) -> Any:
    def make(*names: str) -> list[Person]:
        tag = uuid.uuid4().hex[:6]
        made = []
        for name in names:
            chat = Client(stack, apps["message"], apps["connect"], f"{name}-{tag}")
            files = Client(stack, apps["upload"], apps["connect"], chat.user_id)
            made.append(Person(chat, files))
        return made

    return make


def uploaded(
    stack: Stack, apps: dict[str, ModuleType], owner: Person, data: bytes, **start: Any
) -> str:
    """A complete upload of ``owner``'s (started with ``start``): its id."""
    started = owner.files.ok("upload:start", {"size": len(data), **start})
    assert http("PUT", started["url"], data, started["headers"])[0] == 200
    owner.files.ok("upload:complete", {"uploadId": started["uploadId"]})
    run_processor(stack, apps["processor"])
    upload_id: str = started["uploadId"]
    assert owner.files.ok("upload:get", {"uploadId": upload_id})["state"] == "complete"
    return upload_id


def a_pdf(stack: Stack, apps: dict[str, ModuleType], owner: Person, name: str) -> dict[str, Any]:
    """A PDF of ``owner``'s, uploaded and verified: the attachment a message names."""
    data = pdf_of_size(2048)
    upload_id = uploaded(stack, apps, owner, data, fileName=name, contentType="application/pdf")
    return {
        "uploadId": upload_id,
        "fileName": name,
        "contentType": "application/pdf",
        "size": len(data),
    }


def attach(sender: Person, conversation: str, *attachments: dict[str, Any]) -> int:
    sent = sender.chat.ok(
        "message:send",
        {
            "conversationId": conversation,
            "clientMessageId": uuid.uuid4().hex,
            "body": "",
            "attachments": list(attachments),
        },
    )
    seq: int = sent["seq"]
    return seq


def download(person: Person, upload_id: str, conversation: str) -> dict[str, Any]:
    return person.files.call("upload:get", {"uploadId": upload_id, "conversationId": conversation})


def without_id(reply: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reply.items() if k != "id"}


def seqs_with_files(person: Person, conversation: str) -> dict[str, list[int]]:
    """Which upload the caller's history shows where: upload id -> seqs."""
    page = person.chat.ok("message:history", {"conversationId": conversation, "limit": 100})
    found: dict[str, list[int]] = {}
    for message in page["messages"]:
        for attachment in message.get("attachments", []):
            found.setdefault(attachment["uploadId"], []).append(message["seq"])
    return found


def go(how: str, alice: Person, carol: Person, group: str) -> None:
    """carol stops being a member of ``group`` (alice owns it)."""
    if how == "left":
        carol.chat.ok("conversation:leave", {"conversationId": group})
    elif how == "removed":
        alice.chat.ok(
            "conversation:remove-member", {"conversationId": group, "userId": carol.user_id}
        )
    else:  # carol never accepted the invitation; she declines it now
        carol.chat.ok("conversation:decline", {"conversationId": group})


@pytest.mark.parametrize("how", ["left", "removed", "declined"])
def test_a_file_shared_after_a_member_went_is_not_theirs(
    stack: Stack,
    apps: dict[str, ModuleType],
    people: Any,
    dynamodb_calls: list[tuple[str, ...]],
    how: str,
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    direct = new_conversation(alice.chat, carol.chat)
    group = new_conversation(alice.chat, bob.chat, carol.chat, accept=False)
    bob.chat.ok("conversation:accept", {"conversationId": group})
    if how != "declined":
        carol.chat.ok("conversation:accept", {"conversationId": group})
    # Given a file shared in the group while carol was in it
    before = a_pdf(stack, apps, alice, "agenda.pdf")
    attach(alice, group, before)
    assert download(carol, before["uploadId"], group)["ok"]
    # When carol goes, and afterwards alice sends her a file in their 1:1 (so carol has its
    # id), then shares that file in the group, and the first one there again; and a file
    # carol only ever saw in the 1:1
    go(how, alice, carol, group)
    after = a_pdf(stack, apps, alice, "minutes.pdf")
    only_direct = a_pdf(stack, apps, alice, "private.pdf")
    attach(alice, direct, after, only_direct)
    attach(alice, group, after)
    attach(alice, group, before)
    # Then bob, a member, gets both files through the group; carol gets the later one
    # through the 1:1, where it was shared with her
    for upload in (before, after):
        assert download(bob, upload["uploadId"], group)["data"]["url"]
    assert download(carol, after["uploadId"], direct)["data"]["url"]
    # ... but not through the group: the later file is not_found there, exactly as a file
    # never shared there and an upload that does not exist, read by the same DynamoDB calls
    window = InProcess().window()
    replies: list[dict[str, Any]] = []
    calls: list[list[tuple[str, ...]]] = []
    for upload_id in (after["uploadId"], only_direct["uploadId"], "no-such-upload-" + "x" * 8):
        del dynamodb_calls[:]
        replies.append(without_id(download(carol, upload_id, group)))
        calls.append(dynamodb_calls[:])
    assert replies[0] == {
        "type": "reply",
        "ok": False,
        "error": {"code": "not_found", "message": "no such upload"},
    }, replies[0]
    assert replies[0] == replies[1] == replies[2], replies
    assert calls[0] and calls[0] == calls[1] == calls[2], calls
    window.assert_nothing_happened(f"upload:get of a file shared after carol {how}")
    # And the file shared while she was in the group stays hers, though shared again since
    assert download(carol, before["uploadId"], group)["data"]["fileName"] == "agenda.pdf"
    # (what she may download there is what her history there shows)
    assert set(seqs_with_files(carol, group)) == {before["uploadId"]}


def test_a_file_deleted_and_shared_again_after_a_member_left_is_not_theirs(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice.chat, bob.chat, carol.chat)
    upload = a_pdf(stack, apps, alice, "draft.pdf")
    seq = attach(alice, group, upload)
    carol.chat.ok("conversation:leave", {"conversationId": group})
    # Given the message that shared it while carol was there, deleted after she left (she
    # sees it deleted), and the file shared again afterwards
    alice.chat.ok("message:delete", {"conversationId": group, "seq": seq})
    assert download(bob, upload["uploadId"], group)["error"]["code"] == "not_found"
    attach(alice, group, upload)
    # Then bob gets it again, carol does not: no message of hers attaches it any more
    assert download(bob, upload["uploadId"], group)["ok"]
    assert seqs_with_files(carol, group) == {}
    assert download(carol, upload["uploadId"], group)["error"] == {
        "code": "not_found",
        "message": "no such upload",
    }


def test_a_voice_message_sent_after_a_member_left_is_not_theirs(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice.chat, bob.chat, carol.chat)
    carol.chat.ok("conversation:leave", {"conversationId": group})
    # Given a voice message recorded for the group after carol left
    voice = uploaded(
        stack,
        apps,
        alice,
        VOICE_WEBM,
        fileName="voice",
        contentType="audio/webm;codecs=opus",
        purpose="voice",
        conversationId=group,
    )
    duration = alice.files.ok("upload:get", {"uploadId": voice})["durationMs"]
    attach(alice, group, {"uploadId": voice, "kind": "voice", "durationMs": duration})
    # Then bob plays it, carol (who learnt its id somehow) cannot
    assert download(bob, voice, group)["data"]["durationMs"] == duration
    assert download(carol, voice, group)["error"]["code"] == "not_found"


def test_a_file_shared_before_shares_kept_their_seq_is_for_current_members_only(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    """Uploads shared before the share's seq was stored have ``sharedIn`` alone: current
    members download them as before; a former member is refused them (when they were
    shared is not known, and finding out would take reading the conversation's messages)."""
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice.chat, bob.chat, carol.chat)
    upload = a_pdf(stack, apps, alice, "old.pdf")
    attach(alice, group, upload)
    # Given the upload's item as an older release wrote it: no seq kept for the share
    dynamodb = stack.client("dynamodb")
    table = stack.table("UploadsTable")
    key = {"uploadId": {"S": upload["uploadId"]}}
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    kept = [name for name in item if name.startswith("sharedSeq")]
    assert kept, item  # (this release keeps it)
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="REMOVE " + ", ".join(f"#a{i}" for i in range(len(kept))),
        ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(kept)},
    )
    assert download(carol, upload["uploadId"], group)["ok"]
    carol.chat.ok("conversation:leave", {"conversationId": group})
    # Then members still download it; carol, who left, no longer does
    assert download(bob, upload["uploadId"], group)["data"]["url"]
    assert download(carol, upload["uploadId"], group)["error"]["code"] == "not_found"


def test_a_member_added_again_gets_what_the_groups_history_shows_them(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    """Removed, then added again: a member again, who reads the whole history as every
    member does (one added for the first time too), the messages sent while they were out
    included, and so downloads the files those attach - no more, no less."""
    alice, bob, carol = people("alice", "bob", "carol")
    group = new_conversation(alice.chat, bob.chat, carol.chat)
    alice.chat.ok("conversation:remove-member", {"conversationId": group, "userId": carol.user_id})
    upload = a_pdf(stack, apps, alice, "while-out.pdf")
    seq = attach(alice, group, upload)
    assert download(carol, upload["uploadId"], group)["error"]["code"] == "not_found"
    # When alice adds carol again and carol accepts
    alice.chat.ok("conversation:add-members", {"conversationId": group, "members": [carol.user_id]})
    carol.chat.ok("conversation:accept", {"conversationId": group})
    # Then the message sent while she was out is in her history, and its file is hers
    assert seqs_with_files(carol, group) == {upload["uploadId"]: [seq]}
    assert download(carol, upload["uploadId"], group)["data"]["fileName"] == "while-out.pdf"
    # ... until she leaves again: then only what was shared up to that leave
    carol.chat.ok("conversation:leave", {"conversationId": group})
    later = a_pdf(stack, apps, alice, "after-second-leave.pdf")
    attach(alice, group, later)
    assert download(carol, upload["uploadId"], group)["ok"]
    assert download(carol, later["uploadId"], group)["error"]["code"] == "not_found"


# ---------------------------------------------------------------------- how far a file goes


def test_an_upload_is_shared_in_a_bounded_number_of_conversations(
    stack: Stack, apps: dict[str, ModuleType], people: Any
) -> None:
    """Every share stays on the upload's item (``sharedIn`` and the first share's seq, about
    85 bytes): a seller sending one photo to buyer after buyer grew it until the send's
    transaction failed on DynamoDB's 400 KB item limit (about 4,800 conversations), an
    ``internal`` error, every share's write and every download's read charged by the size
    on the way. A file shared in MAX_SHARES conversations is refused for one more, with the
    attachment's ``bad_request``, and nothing stored; where it is shared it still goes."""
    alice, bob, carol = people("alice", "bob", "carol")
    direct = new_conversation(alice.chat, bob.chat)
    upload = a_pdf(stack, apps, alice, "photo.pdf")
    seq = attach(alice, direct, upload)
    # Given the photo shared in MAX_SHARES conversations (this one and others, as stored)
    dynamodb = stack.client("dynamodb")
    table = stack.table("UploadsTable")
    key = {"uploadId": {"S": upload["uploadId"]}}
    others = [f"dm_{n:032x}" for n in range(MAX_SHARES - 1)]
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="ADD sharedIn :others",
        ExpressionAttributeValues={":others": {"SS": others}},
    )
    stored = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    assert len(stored["sharedIn"]["SS"]) == MAX_SHARES
    # When alice sends it to one buyer more
    buyer = new_conversation(alice.chat, carol.chat)
    window = InProcess().window()
    reply = alice.chat.call(
        "message:send",
        {
            "conversationId": buyer,
            "clientMessageId": uuid.uuid4().hex,
            "body": "",
            "attachments": [upload],
        },
    )
    # Then it is refused as an attachment she cannot use, and nothing happened
    assert not reply["ok"] and reply["error"]["code"] == "bad_request", reply
    assert reply["error"]["details"] == [
        {"field": "data.attachments.0", "message": "not usable"}
    ], reply
    assert f"shared in {MAX_SHARES} conversations" in reply["error"]["message"]
    window.assert_nothing_happened("a send sharing a file in one conversation too many")
    assert dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"] == stored
    assert download(carol, upload["uploadId"], buyer)["error"]["code"] == "not_found"
    # ... while sending it again where it is shared is accepted
    attach(alice, direct, upload)
    # And once a share is taken back (alice deletes her messages in the 1:1), one more goes
    alice.chat.ok("message:delete", {"conversationId": direct, "seq": seq})
    alice.chat.ok("message:delete", {"conversationId": direct, "seq": seq + 1})
    attach(alice, buyer, upload)
    assert download(carol, upload["uploadId"], buyer)["data"]["fileName"] == "photo.pdf"
