"""Pont's consent service: consents, agreements, sharing decisions and the disclosure ledger."""
