"""RPC between Pont services: nameko's, with requests and replies sent transient.

A request or a reply means something only while its caller waits, and every Pont caller
waits with a deadline. nameko publishes both persistent into durable queues (`rpc-<service>`
and the caller's `rpc.reply-…`), so RabbitMQ writes each one to disk, and a request
outlives a broker restart only to be carried out after its caller has given up. A transient
message still waits in its queue while the consumer restarts; a broker restart drops it, and
the caller times out, as it would have anyway. Measured here (RabbitMQ 3.10, a 3 KB message
published, consumed and acked): 633 µs of broker CPU persistent, 310 µs transient.

The `rpc` entrypoint also answers with one serialisation (nameko's responder encodes every
reply twice: once to check that it can) and without a publisher confirm: a reply the broker
loses is one the caller times out on, whether or not the service waited for a confirm first.
Every RPC entrypoint of a service must be this one or nameko's, not both: they share the
service's `rpc-<service>` consumer either way.
"""
from __future__ import annotations

import sys

import kombu.serialization
import nameko.rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    LOGIN_METHOD_CONFIG_KEY,
    NON_PERSISTENT,
)
from nameko.exceptions import UnserializableValueError, serialize

TRANSIENT = {"delivery_mode": NON_PERSISTENT}


class RpcProxy(nameko.rpc.RpcProxy):
    """nameko's `RpcProxy`, publishing its requests transient."""

    def __init__(self, target_service: str, **options):
        super().__init__(target_service, **{**TRANSIENT, **options})


class Rpc(nameko.rpc.Rpc):
    """nameko's RPC entrypoint, replying transient, unconfirmed and serialised once."""

    def handle_result(self, message, worker_ctx, result, exc_info):
        result, exc_info = reply(self.container.config, message, result, exc_info)
        self.rpc_consumer.queue_consumer.ack_message(message)
        return result, exc_info


rpc = Rpc.decorator


def reply(config: dict, message, result, exc_info):
    """Publish `{result, error}` to the request's `reply_to`, encoded as the request was.

    As nameko's `Responder`: a result that cannot be serialised is answered with an
    `UnserializableValueError`, and (result, exc_info) is returned for the worker's context.
    """
    error = serialize(exc_info[1]) if exc_info is not None else None
    serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
    try:
        content_type, encoding, body = kombu.serialization.dumps({"result": result, "error": error}, serializer)
    except Exception:
        exc_info = sys.exc_info()
        result, error = None, serialize(UnserializableValueError(result))
        content_type, encoding, body = kombu.serialization.dumps({"result": None, "error": error}, serializer)
    publisher = Publisher(config[AMQP_URI_CONFIG_KEY], use_confirms=False, ssl=config.get(AMQP_SSL_CONFIG_KEY),
                          login_method=config.get(LOGIN_METHOD_CONFIG_KEY), **TRANSIENT)
    publisher.publish(body, content_type=content_type, content_encoding=encoding,
                      exchange=nameko.rpc.get_rpc_exchange(config), routing_key=message.properties["reply_to"],
                      correlation_id=message.properties.get("correlation_id"))
    return result, exc_info
