"""Entry point: `python -m prediction_service serve` (migrate, then serve) or `migrate`.

Every refusal (settings, secret, migration) is one line on stderr and exit status 1: a task that
cannot migrate never serves, so ECS keeps the previous task definition's tasks running.
"""

from __future__ import annotations

import argparse
import logging
import sys

from prediction_service.errors import ServiceError

log = logging.getLogger("prediction_service")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prediction_service")
    parser.add_argument("command", choices=("serve", "migrate"))
    args = parser.parse_args(argv)

    import boto3

    from prediction_service.credentials import SecretCredentials
    from prediction_service.json_logging import configure_logging
    from prediction_service.migrate import migrate
    from prediction_service.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)
    credentials = SecretCredentials(boto3.client("secretsmanager", region_name=settings.region), settings.db_secret_arn)
    before, after = migrate(credentials.current())
    log.info("schema migrated", extra={"from_revision": before, "to_revision": after})
    if args.command == "migrate":
        return 0

    import uvicorn

    from prediction_service.api import create_app
    from prediction_service.database import Database
    from prediction_service.endpoint import build_invoker

    database = Database(credentials, max_size=settings.db_pool_max, timeout_s=settings.db_timeout_s)
    app = create_app(settings, invoker=build_invoker(settings), database=database)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(sys.argv[1:] if argv is None else argv)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
