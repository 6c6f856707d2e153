"""The consent service's own Prometheus metrics; labels are codes, never personal data."""
from prometheus_client import Counter

SHARING_DECISIONS = Counter(
    "pont_sharing_decisions", "Sharing decisions per category, by result and basis", ["result", "basis"],
)
CONSENT_WITHDRAWALS = Counter("pont_consent_withdrawals", "Consents withdrawn")
CONSENTS_EXPIRED = Counter("pont_consents_expired", "Consents expired by the timer")
