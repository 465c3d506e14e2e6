"""One user turn and one assistant reply out of a chat list: what the messages and sharegpt layouts share."""

from __future__ import annotations

from mmreason.formats.answers import answer_and_target
from mmreason.errors import RecordError


def single_turn(turns: list[tuple[str, str]], where: str) -> tuple[str | None, str, str | None]:
    """(system, user text, assistant text or None) of [(role, text)] with roles system/user/assistant."""
    system = None
    users, replies = [], []
    for role, text in turns:
        if not isinstance(text, str):
            raise RecordError(where, f"a {role} turn's content must be text, got {type(text).__name__}")
        if role == "system":
            system = text
        elif role == "user":
            users.append(text)
        elif role == "assistant":
            replies.append(text)
        else:
            raise RecordError(where, f"turn role {role!r} is not supported (system, user, assistant)")
    if len(users) != 1 or len(replies) > 1:
        raise RecordError(where, f"{len(users)} user and {len(replies)} assistant turns: mmreason records hold one "
                                 "question and one reply")
    return system, users[0], replies[0] if replies else None


def reply_fields(reply: str | None) -> tuple[str | None, str | None]:
    r"""(answer, solution): the reply verbatim is the SFT target; its last \boxed{} (if any) the answer."""
    if reply is None:
        return None, None
    answer, _ = answer_and_target(reply)
    return (answer if "\\boxed" in reply else None), reply
