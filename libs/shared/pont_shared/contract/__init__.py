"""The event contract: the CloudEvents envelope, the event payloads, the errors services raise across RPC."""
