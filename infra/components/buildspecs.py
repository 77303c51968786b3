"""Buildspecs from buildspecs/*.yml, parsed at synth time so each CodeBuild project is self-contained."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_codebuild as codebuild

from gitops.errors import SynthError
from gitops.release.buildspec import parse_buildspec
from gitops.strict_yaml import load_yaml

BUILDSPEC_DIR = "buildspecs"


def read_buildspec(root: Path, name: str) -> dict:
    """buildspecs/<name>.yml as parsed YAML, after the local runner's own validation of it.

    The same model that the embedded target runs buildspecs with checks them here, so a buildspec
    that would fail there fails the synthesis (a GitopsError naming the file and key).
    """
    shown = f"{BUILDSPEC_DIR}/{name}.yml"
    try:
        text = (root / shown).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SynthError(f"{shown}: buildspec not found") from exc
    parse_buildspec(text, shown)  # refuses bad YAML (a repeated key too) as a BuildspecError
    return load_yaml(text, shown)


def load_buildspec(root: Path, name: str) -> codebuild.BuildSpec:
    return codebuild.BuildSpec.from_object(read_buildspec(root, name))
