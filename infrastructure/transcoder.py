"""The stored events' transcoder: eventsourcing's JSON format, parsed by msgspec.

Decoding events is what every reader of the log pays for each event it reads: a read model's
rebuild (most of its time), a node taking over a partition, the API, the mediators. eventsourcing's
``JSONTranscoder`` parses with ``json`` and a Python ``object_hook`` called for every JSON object in
the state, and a payment's state holds its whole signed transaction (1.4 kB, some twenty objects
and strings). msgspec parses the same bytes in C into the same values (integers of any size stay
exact integers, as with ``json``: amounts in wei never become floats).

The format is unchanged (``encode`` is eventsourcing's own, byte for byte): a value kept with a
transcoding is ``{"_type_": NAME, "_data_": ...}``. A Parsec event has those only as top-level
attributes (its timestamp, a channel id), so they are counted in the raw bytes (``"_type_"`` cannot
appear there otherwise: a string holding it is written with escaped quotes) and revived in place;
a state with one anywhere deeper, or one msgspec refuses where ``json`` might not (NaN), is decoded
by ``JSONTranscoder`` itself, with its result or its error.

Selected with eventsourcing's ``TRANSCODER_TOPIC`` (``Settings.application_env``, ``store_env``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import JSONTranscoder

_TYPE_KEY = b'"_type_"'
_parse = msgspec.json.Decoder().decode


class FastJSONTranscoder(JSONTranscoder):
    """``JSONTranscoder`` with a C parser for ``decode`` (see the module's docstring)."""

    def decode(self, data: bytes) -> Any:
        try:
            obj = _parse(data)
        except msgspec.DecodeError:
            return super().decode(data)
        expected = data.count(_TYPE_KEY)
        if not expected:
            return obj
        if type(obj) is dict:
            names = self.names
            revived = 0
            for key, value in obj.items():
                if type(value) is dict and len(value) == 2 and "_type_" in value and "_data_" in value:
                    name = value["_type_"]
                    transcoding = names.get(name) if type(name) is str else None
                    data_ = value["_data_"]
                    if transcoding is None or type(data_) in (dict, list):
                        break  # unknown, or perhaps nested: the reference decoder says what it is
                    obj[key] = transcoding.decode(data_)
                    revived += 1
                    if revived == expected:
                        return obj  # all found (an event's timestamp is its first attribute)
        return super().decode(data)


TOPIC = f"{__name__}:{FastJSONTranscoder.__name__}"
"""eventsourcing's ``TRANSCODER_TOPIC`` for this transcoder."""
