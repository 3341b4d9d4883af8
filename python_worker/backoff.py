"""Reconnect delays shared by every loop that talks to the database (claims, acks, heartbeats)."""

from __future__ import annotations

import random


class Backoff:
    """Reconnect delays: 0.1 s doubling to ``cap``, with jitter.

    Jitter (±25 %) keeps many workers that lost the same server from reconnecting in step;
    ``n`` stops growing at 10 so a long outage never overflows the exponent.
    """

    def __init__(self, cap: float = 5.0) -> None:
        self.cap = cap
        self.n = 0

    def next(self) -> float:
        delay = min(self.cap, 0.1 * (2**self.n))
        self.n = min(self.n + 1, 10)
        return delay * random.uniform(0.75, 1.25)

    def reset(self) -> None:
        self.n = 0
