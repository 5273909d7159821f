"""The msgspec transcoder decodes exactly what eventsourcing's JSONTranscoder decodes (issue 17)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure.settings import Settings
from infrastructure.transcoder import TOPIC, FastJSONTranscoder


def transcoders() -> tuple[JSONTranscoder, FastJSONTranscoder]:
    ref, fast = JSONTranscoder(), FastJSONTranscoder()
    for t in (ref, fast):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
            t.register(transcoding)
    return ref, fast


REF, FAST = transcoders()

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**300), max_value=2**300)
           | st.text() | st.uuids() | st.datetimes(timezones=st.just(UTC)) | st.decimals(allow_nan=False)
           | st.just("_type_") | st.just('{"_type_": "uuid_hex"}'))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.just("_type_") | st.just("_data_"), inner,
                                        max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=10), values, max_size=8))
def test_any_state_decodes_as_the_reference_transcoder_decodes_it(state: dict) -> None:
    data = REF.encode(state)
    assert FAST.encode(state) == data  # the format is eventsourcing's own
    assert outcome(FAST, data) == outcome(REF, data)


def outcome(transcoder: JSONTranscoder, data: bytes) -> tuple[str, object]:
    """What decoding gives: the value, or the error's type (a dict shaped like a transcoded value
    with an unknown type name is refused by both)."""
    try:
        return "value", transcoder.decode(data)
    except Exception as err:
        return "error", type(err)


def test_a_payment_like_state_keeps_exact_amounts_and_revives_its_timestamp() -> None:
    at = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    state = {"timestamp": at, "sequence": 7, "price": 2**128 + 1, "balances": [10**30, 0],
             "transaction": {"price": "340282366920938463463374607431768211457", "memo": 'say "_type_"'},
             "channel_id": uuid4()}
    got = FAST.decode(REF.encode(state))
    assert got == state
    assert type(got["price"]) is int and got["price"] == 2**128 + 1
    assert isinstance(got["timestamp"], datetime) and isinstance(got["channel_id"], UUID)


def test_nested_transcoded_values_take_the_reference_path() -> None:
    state = {"outer": {"when": datetime(2026, 1, 1, tzinfo=UTC), "amounts": [Decimal("1.5")]}}
    assert FAST.decode(REF.encode(state)) == state


def test_what_msgspec_refuses_is_decoded_or_refused_as_json_would() -> None:
    assert FAST.decode(b'{"x": NaN}')["x"] != FAST.decode(b'{"x": NaN}')["x"]  # json reads NaN; so do we
    with pytest.raises(json.JSONDecodeError):
        FAST.decode(b'{"x": ')
    with pytest.raises(Exception, match="not deserializable"):
        FAST.decode(b'{"x": {"_type_": "no_such", "_data_": 1}}')


def test_the_applications_select_it() -> None:
    s = Settings(event_store="sqlite")
    assert s.application_env()["TRANSCODER_TOPIC"] == TOPIC
    assert s.store_env(0)["TRANSCODER_TOPIC"] == TOPIC
