"""The messaging runtime: outbox and relay, idempotent consumers, RPC, broker topology, units of work."""
