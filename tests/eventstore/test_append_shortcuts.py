"""The append's shortcuts give what the long ways give: ids and salts keep their form, and
the time keeps its format."""

from __future__ import annotations

import re
import uuid

from chatledger.eventstore import _codec


def test_ids_are_uuid7_and_salts_are_16_random_bytes() -> None:
    """One random read still gives distinct canonical UUIDv7 ids (in millisecond order) and
    32-digit hex salts."""
    pairs = [*_codec.new_ids_and_salts(500), (_codec.new_event_id(), _codec.new_salt())]
    ids = [i for i, _ in pairs]
    salts = [s for _, s in pairs]
    assert len(set(ids)) == len(ids) and len(set(salts)) == len(salts)
    for eid in ids:
        u = uuid.UUID(eid)
        assert (str(u), u.version, u.variant) == (eid, 7, uuid.RFC_4122)
    assert ids[0][:13] <= ids[-1][:13]
    assert all(re.fullmatch(r"[0-9a-f]{32}", s) for s in salts)
    assert _codec.new_ids_and_salts(0) == []


def test_now_text_is_format_time_of_now() -> None:
    """The time of an append has format_time's fixed-width UTC form."""
    text = _codec.now_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert _codec.format_time(_codec.parse_time(text)) == text
