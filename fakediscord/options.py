"""Application command options as a Discord client sends them: each value checked against the
synced option (type, length, range, choices, channel types) and users, members, roles,
channels and attachments filled into ``resolved``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fakediscord.model import FakeChannel, FakeFile, FakeGuild, FakeMember, FakeRole, FakeUser
from fakediscord.protocol import JSON
from fakediscord.world import World

_OPTION_TYPES: Final[dict[int, str]] = {
    1: "subcommand",
    2: "subcommand group",
    3: "string",
    4: "integer",
    5: "boolean",
    6: "user",
    7: "channel",
    8: "role",
    9: "mentionable",
    10: "number",
    11: "attachment",
}


def build_options(
    world: World,
    label: str,
    schema: list[JSON],
    values: Mapping[str, Any],
    guild: FakeGuild,
    resolved: JSON,
) -> list[JSON]:
    """The ``options`` list for ``values``; raises ValueError for what a client would refuse."""
    by_name = {o["name"]: o for o in schema}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        described = ", ".join(
            f"{o['name']} ({_OPTION_TYPES.get(int(o['type']), o['type'])}"
            f"{', required' if o.get('required') else ''})"
            for o in schema
        )
        raise ValueError(f"{label} has no option(s) {unknown}; it takes: {described or 'none'}")
    missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values]
    if missing:
        raise ValueError(f"{label} is missing required option(s) {missing}")
    built: list[JSON] = []
    for option in schema:
        if option["name"] not in values:
            continue
        kind = int(option["type"])
        value = _convert_option(world, label, option, values[option["name"]], guild, resolved)
        built.append({"name": option["name"], "type": kind, "value": value})
    return built


def _convert_option(
    world: World, label: str, option: JSON, value: Any, guild: FakeGuild, resolved: JSON
) -> Any:
    """Check ``value`` against the synced option like a Discord client; fill ``resolved``."""
    name = f"{label} option {option['name']!r}"
    kind = int(option["type"])
    if kind == 3:
        if not isinstance(value, str):
            raise ValueError(f"{name} takes a string, got {value!r}")
        if option.get("min_length") is not None and len(value) < int(option["min_length"]):
            raise ValueError(f"{name} needs at least {option['min_length']} characters")
        if option.get("max_length") is not None and len(value) > int(option["max_length"]):
            raise ValueError(f"{name} takes at most {option['max_length']} characters")
    elif kind in (4, 10):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} takes a number, got {value!r}")
        if kind == 4 and not isinstance(value, int):
            raise ValueError(f"{name} takes an integer, got {value!r}")
        if option.get("min_value") is not None and value < option["min_value"]:
            raise ValueError(f"{name} must be >= {option['min_value']}")
        if option.get("max_value") is not None and value > option["max_value"]:
            raise ValueError(f"{name} must be <= {option['max_value']}")
    elif kind == 5:
        if not isinstance(value, bool):
            raise ValueError(f"{name} takes a bool, got {value!r}")
    elif kind in (6, 7, 8, 9):
        snowflake = _as_id(name, value)
        return _resolve_snowflake_option(world, name, kind, option, snowflake, guild, resolved)
    elif kind == 11:
        if not isinstance(value, FakeFile):
            raise ValueError(f"{name} takes a FakeFile, got {value!r}")
        attachment = world.store_file(value)
        resolved.setdefault("attachments", {})[attachment["id"]] = attachment
        return attachment["id"]
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise ValueError(f"{name} must be one of {[c['value'] for c in choices]}, got {value!r}")
    return value


def _resolve_snowflake_option(
    world: World,
    name: str,
    kind: int,
    option: JSON,
    value: int,
    guild: FakeGuild,
    resolved: JSON,
) -> str:
    if kind in (6, 9) and value in world.users:
        resolved.setdefault("users", {})[str(value)] = world.users[value].to_payload()
        member = guild.members.get(value)
        if member is not None:
            resolved.setdefault("members", {})[str(value)] = member.to_payload(
                with_user=False, permissions=guild.permissions_of(value)
            )
        return str(value)
    if kind in (8, 9) and value in guild.roles:
        resolved.setdefault("roles", {})[str(value)] = guild.roles[value].to_payload()
        return str(value)
    if kind == 7:
        channel = world.channels.get(value)
        if channel is None or channel.guild_id != guild.id:
            raise ValueError(f"{name}: no channel {value} in guild {guild.id}")
        allowed = option.get("channel_types")
        if allowed and channel.type not in allowed:
            raise ValueError(f"{name} accepts channel types {allowed}, not {channel.type}")
        entry = channel.to_payload(world.users)
        entry["permissions"] = str(guild.permissions_of(world.bot_user_id))
        resolved.setdefault("channels", {})[str(value)] = entry
        return str(value)
    raise ValueError(f"{name}: {value} is not a known {_OPTION_TYPES[kind]} id")


def _as_id(name: str, value: Any) -> int:
    """A snowflake from an int, a numeric string or a Fake{User,Member,Channel,Role}."""
    if isinstance(value, FakeMember):
        return value.user.id
    if isinstance(value, FakeUser | FakeChannel | FakeRole):
        return value.id
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"{name} takes an id (int) or a Fake user/member/channel/role, got {value!r}")
