"""The ledger API of the core: durable, idempotent recording and balances from the fold."""

from gateway.ledger.service import Balance, Ledger, LedgerStats, Recorded

__all__ = ["Balance", "Ledger", "LedgerStats", "Recorded"]
