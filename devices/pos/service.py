"""The running POS ports and their receipt pipeline, for the dashboard, metrics and health."""

from __future__ import annotations

from devices.pos.transport import PortSupervisor
from gateway.holds.service import Holds
from gateway.receipts import ReceiptPipeline


class PosService:
    def __init__(self, pipeline: ReceiptPipeline, supervisors: list[PortSupervisor],
                 holds: Holds | None = None) -> None:
        self.pipeline = pipeline
        self.supervisors = supervisors
        self.holds = holds

    def states(self) -> list[dict[str, object]]:
        return [s.state.as_dict() for s in self.supervisors]
