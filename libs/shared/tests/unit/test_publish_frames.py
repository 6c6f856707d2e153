"""The relay's publish frames are the bytes py-amqp itself writes for the same message."""
from __future__ import annotations

import types

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from pont_shared.frames import publish_frames


def py_amqp_frames(channel_id: int, frame_max: int, *, exchange: str, routing_key: str, mandatory: bool,
                   message_id: str, event_type: str, body: str) -> bytes:
    """What py-amqp's own frame writer sends for `basic_publish` of this message."""
    written = bytearray()
    connection = types.SimpleNamespace(frame_max=frame_max, bytes_sent=0)
    write = frame_writer(connection, types.SimpleNamespace(write=lambda data: written.extend(data)))
    message = amqp.Message(body, content_type="application/json", delivery_mode=2, message_id=message_id,
                           type=event_type)
    write(1, channel_id, spec.Basic.Publish, dumps("Bssbb", (0, exchange, routing_key, mandatory, False)),
          message)
    return bytes(written)


@pytest.mark.parametrize(("body", "frame_max"), [
    ('{"id": "1", "data": {"child_ref": "c"}}', 131072),
    ('{"text": "Ysgol Gymraeg — ŵ ŷ"}', 131072),         # not ASCII: lengths are in bytes
    ("", 131072),
    ('{"big": "' + "x" * 300_000 + '"}', 131072),          # several body frames
    ('{"big": "' + "y" * 5_000 + '"}', 4096),              # a small negotiated frame_max
])
@pytest.mark.parametrize("mandatory", [False, True])
def test_frames_match_py_amqp(body, frame_max, mandatory):
    fields = dict(exchange="pont.disclosures", routing_key="school:6612001", mandatory=mandatory,
                  message_id="7b0c1c0e-2f0a-4c55-9d7e-0d6f4b1f1d2a", event_type="pont.disclosure.delivered.v1")
    ours = publish_frames(3, frame_max, body=body.encode("utf-8"), **fields)
    assert ours == py_amqp_frames(3, frame_max, body=body, **fields)


def test_a_name_longer_than_a_short_string_is_refused():
    with pytest.raises(ValueError, match="255 bytes"):
        publish_frames(1, 131072, exchange="pont.events", routing_key="x" * 256, mandatory=False,
                       message_id="m", event_type="t", body=b"{}")
