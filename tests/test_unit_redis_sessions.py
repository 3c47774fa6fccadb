"""RedisSessionStore's reply handling, without a Redis (see test_seams.py for that)."""

import pytest

from hpxd.backends import redis as redis_backend
from hpxd.backends.redis import RedisSessionStore, encode_command
from hpxd.core import errors

GUEST_TEXT = '{"user_info": {"user_name": null, "role": "guest"}, "data": {}}'


def test_getex_is_encoded_as_resp():
    store = RedisSessionStore(None, 3600)
    assert encode_command("GETEX", "k", "EX", 3600) == (
        b"*4\r\n$5\r\nGETEX\r\n$1\r\nk\r\n$2\r\nEX\r\n$4\r\n3600\r\n")
    assert store._getex_head + store._getex_tail == b"$5\r\nGETEX\r\n$2\r\nEX\r\n$4\r\n3600\r\n"
    key = "ü\r\n".encode()  # lengths count bytes, so any id is one bulk string
    assert encode_command(key) == b"*1\r\n$4\r\n" + key + b"\r\n"


def test_missing_session_is_expired():
    with pytest.raises(errors.SessionExpired):
        RedisSessionStore(None, 60)._loaded(None, "gone")


def test_sessions_parsed_from_the_same_text_are_independent_copies():
    store = RedisSessionStore(None, 60)
    first = store._loaded(GUEST_TEXT, "a")
    first.user_info["role"] = "admin"
    first.data["x"] = 1
    second = store._loaded(GUEST_TEXT, "b")
    assert (second.id, second.user_info, second.data) == (
        "b", {"user_name": None, "role": "guest"}, {})


def test_sessions_with_data_are_parsed_every_time(monkeypatch):
    monkeypatch.setattr(redis_backend, "MAX_REMEMBERED_TEXTS", 2)
    store = RedisSessionStore(None, 60)
    text = '{"user_info": {"user_name": "ann", "role": "user"}, "data": {"n": [1]}}'
    store._loaded(text, "a").data["n"].append(2)
    assert store._loaded(text, "a").data == {"n": [1]}
    for role in ("a", "b", "c"):  # the memory of parsed texts stays bounded
        store._loaded(GUEST_TEXT.replace("guest", role), "s")
    assert len(store._user_infos) <= 2
