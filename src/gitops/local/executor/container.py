"""A job's container, locally: /opt/ml mapped under the step's directory, its process run with a time limit.

Paths in the definition (LocalPath, ContainerArguments, Environment) name /opt/ml/...; each is
rewritten to <step dir>/opt/ml/... so concurrent jobs never share a directory. The image's
`python3` is the pinned job environment's interpreter (README: which versions stand in for the image's).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gitops.local.executor.errors import StepFailed
from gitops.progress import Progress

CONTAINER_ROOT = "/opt/ml"
LOG_TAIL_LINES = 15


class Container:
    def __init__(self, step_dir: Path, job_python: str, where: str) -> None:
        self.root = step_dir
        self.job_python = job_python
        self.where = where
        (step_dir / "opt" / "ml").mkdir(parents=True, exist_ok=True)

    def path(self, container_path: str) -> Path:
        """The local directory that stands for a container path under /opt/ml."""
        if not (container_path == CONTAINER_ROOT or container_path.startswith(CONTAINER_ROOT + "/")):
            raise StepFailed(f"{self.where}: {container_path!r} is not under {CONTAINER_ROOT}: jobs only see /opt/ml")
        return self.root / container_path.lstrip("/")

    def text(self, value: str) -> str:
        """A string with every /opt/ml path in it (arguments, PYTHONPATH) pointing into this container."""
        return value.replace(CONTAINER_ROOT, str(self.root / CONTAINER_ROOT.lstrip("/")))

    def command(self, argv: Sequence[str]) -> list[str]:
        if not argv:
            raise StepFailed(f"{self.where}: the container has no entrypoint")
        program = self.job_python if argv[0] in ("python", "python3") else argv[0]
        return [program, *(self.text(str(a)) for a in argv[1:])]

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path,
        timeout: float,
        log_path: Path,
        log: Progress,
    ) -> str:
        """Run the job process; its output goes to log_path; a non-zero exit fails the step with the log's tail."""
        started = time.monotonic()
        with log_path.open("w", encoding="utf-8") as handle:
            try:
                proc = subprocess.run(
                    self.command(argv),
                    env={**env},
                    cwd=cwd,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                log_path.write_text(log_path.read_text(errors="replace").replace(str(self.root), ""))
                raise StepFailed(
                    f"{self.where}: stopped after MaxRuntimeInSeconds={int(timeout)}", tail(log_path)
                ) from None
            except OSError as exc:
                raise StepFailed(f"{self.where}: cannot start {argv[0]!r}: {exc}") from None
        # The log reads as the container's: /opt/ml/..., not this machine's directory.
        output = log_path.read_text(encoding="utf-8", errors="replace").replace(str(self.root), "")
        log_path.write_text(output, encoding="utf-8")
        if proc.returncode != 0:
            last = tail(log_path)
            reason = last.splitlines()[-1] if last else f"exit code {proc.returncode}"
            raise StepFailed(f"{self.where}: the job exited with code {proc.returncode}: {reason}", last)
        log(f"  {self.where}: job finished in {time.monotonic() - started:.2f}s")
        return output


def tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(line for line in text.splitlines()[-lines:])


def base_env(job_env: Mapping[str, str], definition_env: Mapping[str, str], container: Container) -> dict[str, str]:
    """The job's environment: the base (no host Python setup), then the definition's, paths mapped."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(job_env)
    env.update({key: container.text(str(value)) for key, value in definition_env.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env
