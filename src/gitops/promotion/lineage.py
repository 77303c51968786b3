"""Dev's order of releases: which release is newer, so that promotion only moves a stage forward.

A stage's env repo history is linear (one commit per move, first parent). A release's place in the
source stage's order is the newest commit whose own Release-Id trailer names it: a release that was
rolled back to in dev and re-approved there comes after the ones it replaced. Promotion to the next
stage may only move to a release placed after the one that stage holds; going back is
`gitops rollback`, which says that it is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.promotion.envrepo import Deployment


@dataclass(frozen=True)
class Lineage:
    """The source stage's releases, oldest first, each at its newest commit."""

    stage: str
    order: dict[str, int]  # release id -> position (larger: newer)
    head: str | None  # the release id the source stage's head commit names

    @classmethod
    def from_history(cls, stage: str, history: list[Deployment]) -> Lineage:
        """history: newest first, as envrepo.history returns it."""
        order: dict[str, int] = {}
        for position, deployment in enumerate(reversed(history)):
            if deployment.release_id:
                order[deployment.release_id] = position
        head = history[0].release_id if history else None
        return cls(stage, order, head)

    def knows(self, release_id: str) -> bool:
        return release_id in self.order

    def newer(self, a: str, b: str) -> bool:
        """a comes after b in the source stage's history (both must be known)."""
        return self.order[a] > self.order[b]
