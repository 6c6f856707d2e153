"""The relay reads the broker's frames as py-amqp does, and takes basic.ack itself."""
from __future__ import annotations

import types

import amqp
import pytest
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from amqp.transport import TCPTransport

from pont_shared.frames import basic_ack, split_frames


def written(*methods) -> bytes:
    """The bytes py-amqp's frame writer sends for (channel, method, argument format, arguments, message)."""
    out = bytearray()
    write = frame_writer(types.SimpleNamespace(frame_max=4096, bytes_sent=0),
                         types.SimpleNamespace(write=lambda data: out.extend(data)))
    for channel, method, fmt, args, message in methods:
        write(1, channel, method, dumps(fmt, args), message)
    return bytes(out)


def py_amqp_reads(data: bytes) -> list[tuple[int, int, bytes]]:
    """The frames py-amqp's own reader takes from `data`."""
    transport = TCPTransport.__new__(TCPTransport)
    chunks = [data]
    transport._read_buffer, transport.raise_on_initial_eintr = b"", True
    transport._quick_recv = lambda n: chunks.pop() if chunks else b""
    frames = []
    while True:
        try:
            frames.append(transport.read_frame())
        except OSError:
            return frames


ACK_ONE = (1, spec.Basic.Ack, "Lb", (7, False), None)
ACK_UP_TO = (1, spec.Basic.Ack, "Lb", (2 ** 40 + 3, True), None)
NACK = (1, spec.Basic.Nack, "Lbb", (8, False, False), None)
RETURN = (1, spec.Basic.Return, "Bsss", (312, "NO_ROUTE", "pont.disclosures", "school:6612001"),
          amqp.Message(b'{"id": "x"}' * 500, message_id="m-1"))  # a header and two body frames
HEARTBEAT = bytes((8, 0, 0, 0, 0, 0, 0, 0xCE))


def test_frames_are_split_as_py_amqp_reads_them():
    data = written(ACK_ONE, NACK, RETURN) + HEARTBEAT + written(ACK_UP_TO)
    frames, rest = split_frames(data)
    assert frames == py_amqp_reads(data)
    assert len(frames) == 8 and rest == b""


@pytest.mark.parametrize("cut", [1, 7, 8, 20])
def test_an_incomplete_frame_is_left_for_the_next_read(cut):
    data = written(ACK_ONE, ACK_UP_TO)
    whole, rest = split_frames(data[:-cut])
    assert [basic_ack(f) for f in whole] == [(7, False)]
    assert rest == data[len(written(ACK_ONE)):-cut]
    more, rest = split_frames(rest + data[-cut:])
    assert [basic_ack(f) for f in more] == [(2 ** 40 + 3, True)] and rest == b""


def test_only_a_basic_ack_is_taken_as_one():
    frames, _ = split_frames(written(ACK_ONE, ACK_UP_TO, NACK, RETURN) + HEARTBEAT)
    assert [basic_ack(f) for f in frames] == [(7, False), (2 ** 40 + 3, True)] + [None] * 6


def test_a_frame_without_its_end_octet_is_refused():
    data = bytearray(written(ACK_ONE))
    data[-1] = 0x00
    with pytest.raises(amqp.exceptions.UnexpectedFrame):
        split_frames(bytes(data))
