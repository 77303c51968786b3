"""Dev's order of releases, read from its history: what forward-only promotion compares."""

from __future__ import annotations

from gitops.promotion.envrepo import Deployment
from gitops.promotion.lineage import Lineage


def _history(*release_ids: str | None) -> list[Deployment]:
    """Newest first, as envrepo.history returns it."""
    return [Deployment(f"{i:040d}", rid, f"commit {i}", "2026-12-08T00:00:00Z") for i, rid in enumerate(release_ids)]


def test_a_release_is_placed_at_its_newest_commit():
    # Oldest first: a, b, then dev rolled back to a (a commit of its own naming a): a is now newest.
    lineage = Lineage.from_history("dev", _history("a", "b", "a", None))
    assert lineage.stage == "dev" and lineage.head == "a"
    assert lineage.newer("a", "b") and not lineage.newer("b", "a")
    assert not lineage.newer("a", "a")
    assert lineage.order == {"a": 3, "b": 2}


def test_commits_without_a_release_take_no_place():
    lineage = Lineage.from_history("dev", _history(None, "b", None, "a"))
    assert lineage.head is None  # the head commit names no release
    assert lineage.knows("a") and lineage.knows("b") and not lineage.knows("c")
    assert lineage.newer("b", "a")


def test_an_empty_history_knows_nothing():
    lineage = Lineage.from_history("dev", [])
    assert (lineage.head, lineage.order) == (None, {})
    assert not lineage.knows("a")
