"""The protocol every scanner of the gate follows, and what it is given to scan.

A scanner says who it is (name, version, where its rules are documented), what its `passed`
count counts, and runs: given a ScanInput it returns a ToolRun with its raw findings, its passed
count and the rules it ran per resource type. How it runs (in-process, in its own environment or
process) is its own business; the gate runs every registered scanner concurrently in a thread.
Adding one is a module with a `SCANNER`, its test, and a line in gitops.scan.scanners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Protocol

from gitops.progress import Progress, silent
from gitops.release.manifest import ReleaseManifest
from gitops.scan.findings import ToolRun
from gitops.scan.pipeline_files import PipelineRef
from gitops.scan.templates import TemplateRef


@dataclass(frozen=True)
class ScanInput:
    """One release and its source tree, as every scanner reads them."""

    root: Path  # the repository (source for the secrets scan, checkov's lock)
    release_dir: Path
    manifest: ReleaseManifest
    templates: list[TemplateRef]  # scanners read TemplateRef.scan_path: inline skips neutralised
    pipelines: list[PipelineRef]
    exclude: frozenset[str] = frozenset()  # repository-relative paths that are not source (release, reports)
    install_checkov: bool = True
    progress: Progress = field(default=silent)
    source: bool = True  # False: the release alone (a stage's own scan has no source tree)
    checkov_lock: Path | None = None  # the lock the release carries, else the source's scripts/
    policy_sha256: str = ""  # the policy the findings will be judged by (part of every scan-cache key)
    use_cache: bool = True  # False: every unit scanned afresh (gitops.scan.result_cache)

    @property
    def template_groups(self) -> list[str]:
        return sorted({f"{t.stage}/{t.stack}" for t in self.templates})


class Scanner(Protocol):
    """One tool of the gate."""

    name: str  # as findings, reports and the manifest name the tool
    information_uri: str  # where its rules are documented (SARIF's driver.informationUri)
    passed_unit: str  # what its `passed` count counts, for a reader of the report

    def version(self) -> str:
        """The tool's version as it will run (read without running a scan)."""
        ...

    def check_ready(self, job: ScanInput) -> None:
        """Raise a ScanError now, before any scanner starts, if this one cannot run (a missing environment)."""
        ...

    def run(self, job: ScanInput) -> ToolRun:
        """Scan; raw findings (no policy applied), the passed count, the rules run per resource type."""
        ...


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution; None where it is not (deploy builds install only what they run)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
