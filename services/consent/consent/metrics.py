"""The consent service's own Prometheus metrics; labels are codes, never personal data."""
from prometheus_client import Counter, Gauge

SHARING_DECISIONS = Counter(
    "pont_sharing_decisions", "Sharing decisions per category, by result and basis", ["result", "basis"],
)
CONSENT_WITHDRAWALS = Counter("pont_consent_withdrawals", "Consents withdrawn")
CONSENTS_EXPIRED = Counter("pont_consents_expired", "Consents expired by the timer")

LEDGER_INTACT = Gauge("pont_ledger_intact", "1 when the last verification found the disclosure ledger intact, else 0")
LEDGER_ENTRIES_VERIFIED = Gauge("pont_ledger_entries_verified", "Ledger entries the last verification checked")
LEDGER_VERIFIED_AT = Gauge("pont_ledger_last_verified_timestamp_seconds",
                           "Unix time of the last ledger verification (seconds since: time() - this)")
