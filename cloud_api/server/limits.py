"""Central's limits, in one place: what one request, one batch and one entry may hold.

An entry's points and money are bounded by plausibility, not only by what fits in 64 bits:
a receipt of ten million yuan, or a gateway minting 10^15 points, is a fault or an attack,
and central refuses it (the event's verdict is `rejected`, code `out_of_bounds`) instead
of letting one entry make every balance of the account meaningless. The contract
(`openapi.yaml`) states the defaults beside each bounded field (`x-limit`); the server
validates with the limits it was started with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CentralLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_points: int = Field(
        default=10_000_000, ge=1, le=2**53,
        description="Points one entry may carry, either sign (`x-limit: points`).")
    max_amount_fen: int = Field(
        default=1_000_000_000, ge=1, le=2**53,
        description="Money one entry may carry, in fen: ¥10,000,000 (`x-limit: amount`).")
    max_id_chars: int = Field(
        default=200, ge=32, le=10_000,
        description="Characters of an id or key: request ids, member, account and entry "
        "ids, natural keys (`x-limit: id`).")
    max_text_chars: int = Field(
        default=1_000, ge=1, le=100_000,
        description="Characters of a free-text field: reasons, items, names (`x-limit: text`).")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024,
        description="Bytes of one request body; more is 413 (a gateway halves its batch).")
    max_batch_events: int = Field(
        default=1_000, ge=1, le=100_000,
        description="Events of one pushed batch; more is 413.")

    def bound(self, kind: str) -> int:
        """The limit an `x-limit` of the contract names."""
        return {"points": self.max_points, "amount": self.max_amount_fen,
                "id": self.max_id_chars, "text": self.max_text_chars}[kind]
