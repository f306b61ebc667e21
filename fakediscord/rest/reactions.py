"""Reactions: the bot adds (``@me``) and removes its own or, with Manage Messages, others'."""

from __future__ import annotations

import time

from aiohttp import web

from fakediscord.errors import ApiError
from fakediscord.protocol import ADD_REACTIONS, MANAGE_MESSAGES, READ_MESSAGE_HISTORY, VIEW_CHANNEL
from fakediscord.records import Reaction
from fakediscord.rest.plumbing import channel_of, check_bot, fake_of, message_of, no_content

routes = web.RouteTableDef()

_MESSAGE = r"/channels/{channel_id:\d+}/messages/{message_id:\d+}"
_REACTION = _MESSAGE + r"/reactions/{emoji}/{user:@me|\d+}"


@routes.put(_REACTION)
async def put_reaction(request: web.Request) -> web.Response:
    fake = fake_of(request)
    bot_user_id = fake.world.bot_user_id
    channel = channel_of(request)
    if request.match_info["user"] != "@me":
        raise ApiError(405, 0, "405: Method Not Allowed")
    check_bot(fake, channel, VIEW_CHANNEL | READ_MESSAGE_HISTORY | ADD_REACTIONS)
    message = message_of(request, channel)
    emoji = request.match_info["emoji"]
    users = message.reactions.setdefault(emoji, set())
    if bot_user_id not in users:  # Discord: adding twice is a no-op
        users.add(bot_user_id)
        fake.activity.reactions.append(
            Reaction(channel.id, message.id, emoji, bot_user_id, time.monotonic())
        )
        fake.activity.emit(
            "reaction_added",
            f"bot reacted {emoji} to message {message.id}",
            channel_id=channel.id,
            message_id=message.id,
            emoji=emoji,
        )
    return no_content()


@routes.delete(_REACTION)
async def delete_reaction(request: web.Request) -> web.Response:
    fake = fake_of(request)
    bot_user_id = fake.world.bot_user_id
    channel = channel_of(request)
    message = message_of(request, channel)
    who = request.match_info["user"]
    user_id = bot_user_id if who == "@me" else int(who)
    if user_id != bot_user_id:
        check_bot(fake, channel, VIEW_CHANNEL | MANAGE_MESSAGES)
    emoji = request.match_info["emoji"]
    users = message.reactions.get(emoji, set())
    if user_id in users:
        users.discard(user_id)
        for reaction in fake.activity.reactions:
            if (
                reaction.message_id == message.id
                and reaction.emoji == emoji
                and reaction.user_id == user_id
                and reaction.active
            ):
                reaction.removed_at = time.monotonic()
        fake.activity.emit(
            "reaction_removed",
            f"bot removed reaction {emoji} from message {message.id}",
            channel_id=channel.id,
            message_id=message.id,
            emoji=emoji,
        )
    return no_content()
