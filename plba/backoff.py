"""Jittered exponential backoff, shared by task retries and worker restarts."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay for the n-th retry: `base * 2**(n-1)`, capped at `cap`, with +/- `jitter` spread."""

    base: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first retry)."""
        raw = min(self.cap, self.base * 2 ** max(attempt - 1, 0))
        spread = raw * self.jitter
        return max(0.0, raw + random.uniform(-spread, spread))
