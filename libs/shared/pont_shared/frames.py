"""The AMQP 0-9-1 frames Pont writes and reads itself, where py-amqp's general path cost too much.

Writing: the outbox relay's `basic.publish` as its three kinds of frame (method, content
header, body), built in one step. Byte for byte what py-amqp writes for the same message
(a unit test holds it to that). py-amqp's general path (argument and property serialisers, and a
non-blocking read of the socket before every publish) was a fifth of a busy relay's time.

Reading: whole frames split off a buffer, and `basic.ack` recognised, so that the outbox relay
can take a batch's confirms in bulk (see `OutboxRelay._await_confirms`).
"""
from __future__ import annotations

import functools
from struct import pack, unpack_from

import amqp

FRAME_END = b"\xce"
# basic properties, by their flag bits
_CONTENT_TYPE, _CONTENT_ENCODING, _DELIVERY_MODE = 1 << 15, 1 << 14, 1 << 12
_MESSAGE_ID, _TYPE = 1 << 7, 1 << 5
_EVENT_PROPERTIES = _CONTENT_TYPE | _CONTENT_ENCODING | _DELIVERY_MODE | _MESSAGE_ID | _TYPE
PERSISTENT = 2


def shortstr(value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"an AMQP short string is at most 255 bytes: {value[:40]}…")
    return bytes((len(data),)) + data


@functools.lru_cache(maxsize=1024)
def _short_name(value: str) -> bytes:
    """`shortstr` of a name that recurs (an event type, a content type): made once."""
    return shortstr(value)


@functools.lru_cache(maxsize=1024)
def _method_frame(channel_id: int, exchange: str, routing_key: str, mandatory: bool) -> bytes:
    method = (pack(">HHH", 60, 40, 0) + shortstr(exchange) + shortstr(routing_key)
              + (b"\x01" if mandatory else b"\x00"))
    return pack(">BHI", 1, channel_id, len(method)) + method + FRAME_END


def _publish(channel_id: int, frame_max: int, method_frame: bytes, flags: int, properties: bytes,
             body: bytes) -> bytes:
    header = pack(">HHQH", 60, 0, len(body), flags) + properties
    parts = [method_frame, pack(">BHI", 2, channel_id, len(header)), header, FRAME_END]
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        piece = body[start:start + chunk]
        parts += [pack(">BHI", 3, channel_id, len(piece)), piece, FRAME_END]
    return b"".join(parts)


def publish_frames(channel_id: int, frame_max: int, *, exchange: str, routing_key: str, mandatory: bool,
                   message_id: str, event_type: str, body: bytes) -> bytes:
    """An event: persistent JSON, as py-amqp writes `amqp.Message(body, content_type="application/json",
    delivery_mode=2, message_id=..., type=...)`."""
    properties = (_short_name("application/json") + _short_name("utf-8") + bytes((PERSISTENT,))
                  + shortstr(message_id) + _short_name(event_type))
    return _publish(channel_id, frame_max, _method_frame(channel_id, exchange, routing_key, mandatory),
                    _EVENT_PROPERTIES, properties, body)


_BASIC_ACK = pack(">HH", 60, 80)


def split_frames(data: bytes) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """The complete AMQP frames at the start of `data` as (type, channel, payload), and the rest.

    Raises `amqp.exceptions.UnexpectedFrame` where a frame does not end as one must, as
    py-amqp's own reader does.
    """
    frames, offset = [], 0
    while len(data) - offset >= 8:
        frame_type, channel, size = unpack_from(">BHI", data, offset)
        end = offset + 7 + size
        if len(data) <= end:
            break
        if data[end] != 0xCE:
            raise amqp.exceptions.UnexpectedFrame(f"Received frame_end {data[end]:#04x} while expecting 0xce")
        frames.append((frame_type, channel, data[offset + 7:end]))
        offset = end + 1
    return frames, data[offset:]


def basic_ack(frame: tuple[int, int, bytes]) -> tuple[int, bool] | None:
    """(delivery tag, multiple) if `frame` is a `basic.ack`, else None."""
    frame_type, _, payload = frame
    if frame_type != 1 or payload[:4] != _BASIC_ACK:
        return None
    tag, bits = unpack_from(">QB", payload, 4)
    return tag, bool(bits & 1)
