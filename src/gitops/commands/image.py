"""`gitops pin-image`: write the app image digest CI pushed into app/image.yaml, the reviewed pin render carries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gitops.cli import JsonOpt, RootOpt, app, emit_json, out


@app.command("pin-image")
def pin_image(
    image: Annotated[
        str | None,
        typer.Option("--image", help="<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<digest>"),
    ] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="With --tag: read the digest from this stage's app repository.")
    ] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="The tag CI pushed (the source commit).")] = None,
    root: RootOpt = Path("."),
    as_json: JsonOpt = False,
) -> None:
    """Pin the app image by digest (refused unless by digest, from a stage's app repository); commit it for review."""
    from gitops.config import load_stages
    from gitops.release.app_image import PIN_FILE, AppImageError, registry_image, write_pin

    stages = load_stages(root)
    if (image is None) == (tag is None) or (tag is not None and stage not in stages):
        raise AppImageError(
            f"pin-image: give --image <repository>@sha256:..., or --stage ({'/'.join(stages)}) with --tag"
        )
    reference = image if image is not None else registry_image(stages[str(stage)], str(tag))
    previous, pinned = write_pin(root, reference, stages)
    if as_json:
        emit_json({"pin": str(PIN_FILE), "previous": previous.image if previous else None, "image": pinned.image})
    else:
        out.print(f"{PIN_FILE}: {previous.image if previous else 'no image'} -> {pinned.image}")
