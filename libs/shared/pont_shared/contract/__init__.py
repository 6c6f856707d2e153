"""The contracts: the CloudEvents envelope and event payloads, RPC requests and replies (`rpc`), RPC errors."""
