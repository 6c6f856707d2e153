"""RPC between Pont services: nameko's, each request expiring at its caller's deadline.

A request or a reply means something only while its caller waits, and every Pont caller
waits with a deadline. A request waits in the service's `rpc-<service>` queue, a quorum queue
(`topology.rpc_queue`), so it outlives the loss of a broker node, or a restart; it carries the
caller's deadline as its `expiration`, so one its caller has given up on is dropped, never
carried out late. Requests and replies are sent transient: a classic reply queue (exclusive to
the caller's connection, `topology.reply_queue`) then keeps them off disk (measured here,
RabbitMQ 3.10, a 3 KB message published, consumed and acked: 633 µs of broker CPU persistent,
310 µs transient), and a quorum queue writes every message to its log whatever it is sent as.

The `rpc` entrypoint also answers with one serialisation (nameko's responder encodes every
reply twice: once to check that it can), without a publisher confirm (a reply the broker
loses is one the caller times out on, whether or not the service waited for a confirm
first), on a channel of the process's own (`_ReplyConnections`).
Every RPC entrypoint of a service must be this one or nameko's, not both: they share the
service's `rpc-<service>` consumer either way.
"""
from __future__ import annotations

import contextlib
import inspect
import socket
import sys
import time

import amqp
import eventlet
import kombu.serialization
import nameko.messaging
import nameko.rpc
import structlog
from eventlet.semaphore import Semaphore
from nameko.constants import AMQP_URI_CONFIG_KEY, NON_PERSISTENT
from nameko.exceptions import RpcTimeout, UnserializableValueError, serialize
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener

from pont_shared.contract.caller import DEV_CALLER_VERIFY_KEY, CallerRefused, CallerVerifier, checked
from pont_shared.logs import describe
from pont_shared.messaging import topology
from pont_shared.messaging.broker import BROKER_ERRORS, TracksConsuming, broker_user, connect_amqp

log = structlog.get_logger(__name__)
HEARTBEAT_SECONDS = 30
RPC_TIMEOUT_KEY = "PONT_RPC_TIMEOUT_SECONDS"
TRANSIENT = {"delivery_mode": NON_PERSISTENT}


class _QueueConsumer(TracksConsuming, nameko.messaging.QueueConsumer):
    """nameko's queue consumer, whose acknowledgements never raise.

    A delivery whose connection the broker dropped is the broker's again, and nameko means to
    ignore its ack; but it catches only Python's own `ConnectionError`, not py-amqp's, and an
    exception there kills the service's container.
    """

    def ack_message(self, message):
        with contextlib.suppress(*BROKER_ERRORS):
            super().ack_message(message)

    def requeue_message(self, message):
        with contextlib.suppress(*BROKER_ERRORS):
            super().requeue_message(message)


def _rpc_exchange_checked(config: dict) -> None:
    """nameko's queues are bound to `nameko-rpc` without declaring it (which needs a permission no
    service's broker user has: see `topology`), once it is known to exist."""
    connection = connect_amqp(config[AMQP_URI_CONFIG_KEY])
    try:
        topology.ensure_shared(connection, [topology.RPC_EXCHANGE])
    finally:
        connection.close()


class _RpcConsumer(nameko.rpc.RpcConsumer):
    """nameko's RPC consumer, its request queue Pont's (`topology.rpc_queue`: a quorum queue)."""

    queue_consumer = _QueueConsumer()

    def setup(self):
        super().setup()
        _rpc_exchange_checked(self.container.config)
        self.queue = topology.rpc_queue(self.queue.name, self.queue.routing_key)

    def handle_result(self, message, result, exc_info):
        """The answer to a request no entrypoint takes (an unknown method)."""
        result, exc_info = reply(self.container.config, message, result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class _ReplyListener(ReplyListener):
    """nameko's reply listener, its reply queue exclusive to its connection (`topology.reply_queue`)."""

    queue_consumer = _QueueConsumer()

    def setup(self):
        super().setup()
        _rpc_exchange_checked(self.container.config)
        self.queue = topology.reply_queue(self.queue.name, self.queue.routing_key, self.queue.queue_arguments)


class RpcProxy(DependencyProvider):
    """`self.consent.share(...)`: nameko's RPC to service `target`, requests transient and expiring,
    and every call bounded by a deadline.

    nameko 2.14 waits for a reply for ever, so a request or reply lost to a broker restart (both
    are transient) would hold the worker, and whatever it holds, for good. Here a call raises
    `RpcTimeout` once `PONT_RPC_TIMEOUT_SECONDS` (default 10; `timeout_key` names another
    setting) have passed since it was made, waited on at once or later (`call_async`).
    `name_key` may name a setting that holds another instance's name (tests).
    """

    reply_listener = _ReplyListener()

    def __init__(self, target: str | None = None, *, timeout_key: str = RPC_TIMEOUT_KEY,
                 default_timeout: float = 10.0, name_key: str | None = None, **options):
        super().__init__()
        self.target = target
        self.timeout_key = timeout_key
        self.default_timeout = default_timeout
        self.name_key = name_key
        self.options = {**TRANSIENT, **options}

    def setup(self):
        self.timeout = float(self.container.config.get(self.timeout_key, self.default_timeout))
        self.options["expiration"] = self.timeout  # a request outliving its caller's wait is dropped
        # RabbitMQ vouches that the request comes from the user it claims (`Rpc.vouched_by`)
        self.options["user_id"] = broker_user(self.container.config[AMQP_URI_CONFIG_KEY])
        if self.name_key:
            self.target = self.container.config.get(self.name_key, self.target)

    def proxy(self, worker_ctx, service_name: str) -> _ServiceProxy:
        return _ServiceProxy(worker_ctx, service_name, self.reply_listener, timeout=self.timeout, **self.options)

    def get_dependency(self, worker_ctx) -> _ServiceProxy:
        return self.proxy(worker_ctx, self.target)


class _ServiceProxy(nameko.rpc.ServiceProxy):
    def __init__(self, worker_ctx, service_name, reply_listener, *, timeout: float, **options):
        super().__init__(worker_ctx, service_name, reply_listener, **options)
        self.timeout = timeout

    def __getattr__(self, name):
        return _MethodProxy(self.worker_ctx, self.service_name, name, self.reply_listener, timeout=self.timeout,
                            **self.options)


class _MethodProxy(nameko.rpc.MethodProxy):
    def __init__(self, *args, timeout: float, **options):
        super().__init__(*args, **options)
        self.timeout = timeout

    def __call__(self, *args, **kwargs):
        return self.call_async(*args, **kwargs).result()

    def call_async(self, *args, **kwargs) -> _Reply:
        return _Reply(super().call_async(*args, **kwargs), time.monotonic() + self.timeout,
                      f"{self.service_name}.{self.method_name}")


class _Reply:
    """nameko's `RpcReply`, whose `result()` raises `RpcTimeout` at the call's deadline."""

    def __init__(self, reply: nameko.rpc.RpcReply, deadline: float, call: str):
        self.reply, self.deadline, self.call = reply, deadline, call

    def result(self):
        with eventlet.Timeout(max(0.0, self.deadline - time.monotonic()), RpcTimeout(self.call)):
            return self.reply.result()


class Rpc(nameko.rpc.Rpc):
    """nameko's RPC entrypoint, replying transient, unconfirmed and serialised once, and
    verifying who the method works for before it runs.

    The caller is the argument named `caller` if the method has one, or where `caller` says:
    `"request.caller"` (a key of the `request` argument) or `"requests[].caller"` (of each item
    of `requests`). It must be the gateway's signed assertion, which is replaced by its claims
    (a dict) before the method sees it; or claims a service vouches for, if the method names
    that service in `vouched_by` and RabbitMQ authenticated the request as coming from it
    (`user_id`). A missing or forged caller is answered `CallerRefused`, and the method never
    runs (pont_shared.contract.caller).
    """

    rpc_consumer = _RpcConsumer()

    def __init__(self, expected_exceptions=(), sensitive_arguments=(), *, caller: str | None = None,
                 vouched_by: tuple[str, ...] = (), **kwargs):
        super().__init__(expected_exceptions=expected_exceptions, sensitive_arguments=sensitive_arguments, **kwargs)
        self.caller_at, self.vouched_by = caller, vouched_by

    def setup(self):
        super().setup()
        settings = self.container.config.get("PONT_SETTINGS")
        self.verifier = CallerVerifier(settings.caller_verify_key if settings else DEV_CALLER_VERIFY_KEY)
        self.signature = inspect.signature(getattr(self.container.service_cls, self.method_name))
        if self.caller_at is None and "caller" in self.signature.parameters:
            self.caller_at = "caller"
        own_user = broker_user(self.container.config[AMQP_URI_CONFIG_KEY])
        # a broker user shared by every process (guest, in development) cannot tell services apart
        shared = own_user != self.container.service_name
        self.vouchers = {own_user} if shared and self.vouched_by else set(self.vouched_by)

    def handle_message(self, body, message):
        if self.caller_at and isinstance(body, dict) and "args" in body and "kwargs" in body:
            sender = message.properties.get("user_id")
            body = {**body, **self._with_verified_caller(body["args"], body["kwargs"], sender)}
        super().handle_message(body, message)

    def _with_verified_caller(self, args, kwargs, sender: str | None) -> dict:
        try:
            bound = self.signature.bind(None, *args, **kwargs)
        except TypeError:
            return {}  # nameko answers IncorrectSignature
        if self.caller_at == "caller":
            bound.arguments["caller"] = self._verified(bound.arguments["caller"], sender)
        else:
            name, key = self.caller_at.split(".")
            held = bound.arguments.get(name.removesuffix("[]"))
            holders = held if name.endswith("[]") else [held]
            if not isinstance(holders, list) or not all(isinstance(holder, dict) for holder in holders):
                raise CallerRefused(f"{self.method_name} needs its caller in {self.caller_at}")
            for holder in holders:
                holder[key] = self._verified(holder.get(key), sender)
        return {"args": list(bound.args[1:]), "kwargs": bound.kwargs}

    def _verified(self, caller, sender: str | None) -> dict:
        if isinstance(caller, str):
            return self.verifier.verify(caller)
        if isinstance(caller, dict) and sender is not None and sender in self.vouchers:
            return checked(caller)
        raise CallerRefused(f"{self.method_name} needs the gateway's signed caller assertion")

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
    _REPLIES.send(config[AMQP_URI_CONFIG_KEY], exchange=nameko.rpc.get_rpc_exchange(config).name,
                  routing_key=message.properties["reply_to"],
                  correlation_id=message.properties.get("correlation_id") or "", content_type=content_type,
                  content_encoding=encoding, body=body.encode(encoding) if isinstance(body, str) else body)
    return result, exc_info


class _ReplyConnections:
    """The process's own AMQP channel (one per broker URI) for RPC replies, used under a lock.

    Through kombu (a connection object, a producer from the pool, its retry wrapper) a reply
    cost more of the service's CPU than a simple RPC's work did. py-amqp reads what the broker
    has said before each publish, so a reply that finds the connection closed (a broker
    restart, a forced close) raises, and is written again on a new connection. A reply that
    cannot be written at all (the broker is down) is logged and dropped: its caller times out
    and retries, as if the broker had lost it. It is never raised into nameko, which would
    kill the service's container. A green thread per connection keeps its heartbeats.
    """

    def __init__(self, heartbeat: float = HEARTBEAT_SECONDS):
        self.heartbeat = heartbeat
        self._lock = Semaphore()  # green: a worker waiting for it yields to the one writing
        self._open: dict[str, amqp.Channel] = {}

    def send(self, uri: str, *, exchange: str, routing_key: str, body: bytes, **properties) -> None:
        # user_id: RabbitMQ vouches that the reply comes from the user it claims (broker_access)
        message = amqp.Message(body, delivery_mode=NON_PERSISTENT, user_id=broker_user(uri), **properties)
        with self._lock:
            for _attempt in range(2):
                try:
                    self._channel(uri).basic_publish(message, exchange=exchange, routing_key=routing_key)
                    return
                except BROKER_ERRORS as exc:
                    self._drop(uri)
                    error = exc
        log.warning("rpc.reply_lost", error=describe(error))

    def _channel(self, uri: str) -> amqp.Channel:
        if uri not in self._open:
            connection = connect_amqp(uri, heartbeat=self.heartbeat)
            self._open[uri] = connection.channel()
            eventlet.spawn(self._keep_alive, uri, connection)
        return self._open[uri]

    def _keep_alive(self, uri: str, connection: amqp.Connection) -> None:
        """Read what the broker sent while no reply was written (heartbeats, a close) and send
        our heartbeats, until the connection is dropped."""
        while True:
            eventlet.sleep(self.heartbeat / 4)
            with self._lock:
                channel = self._open.get(uri)
                if channel is None or channel.connection is not connection:
                    return
                try:
                    with contextlib.suppress(socket.timeout):
                        connection.drain_events(timeout=0)
                    connection.heartbeat_tick()
                except BROKER_ERRORS:
                    self._drop(uri)
                    return

    def _drop(self, uri: str) -> None:
        channel = self._open.pop(uri, None)
        if channel is not None:
            with contextlib.suppress(Exception):  # a dead socket has nothing left to close
                channel.connection.collect()


_REPLIES = _ReplyConnections()
