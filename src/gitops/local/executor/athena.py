"""Athena queries of the offline store, run by DuckDB over the Parquet files the Feature Store runtime wrote.

Tables are the feature groups' Glue tables as the embedded SageMaker names them
(OfflineStoreConfig.DataCatalogConfig); each reads the group's files under its
ResolvedOutputS3Uri. A processing input's AthenaDatasetDefinition is run, its result written to
OutputS3Uri and delivered to the input's LocalPath as SageMaker does. The SQL dialect is DuckDB's,
which reads the queries this project writes (window functions, quoted "db"."table"); Presto/Trino
functions DuckDB lacks fail the step with DuckDB's message.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

from gitops.local.executor.errors import StepFailed
from gitops.local.executor.featurestore import OFFLINE_TYPES
from gitops.local.executor.storage import download_prefix, list_keys, split_uri

SUPPORTED_FORMATS = {"TEXTFILE": "csv", "PARQUET": "parquet", "JSON": "json"}


class OfflineStoreAthena:
    """Runs SQL over the offline stores of the named feature groups (moto cannot list feature groups)."""

    def __init__(
        self, sagemaker: Any, s3: Any, feature_groups: list[str], tables: dict[str, tuple[str, str]] | None = None
    ) -> None:
        self.sagemaker = sagemaker
        self.s3 = s3
        self.feature_groups = feature_groups
        # group -> (database, table) the template names: AWS creates the Glue table by that name, while
        # moto ignores a given DataCatalogConfig and invents one, so the template's name is the truth here.
        self.tables = tables or {}

    def _tables(self) -> list[dict]:
        groups = []
        for name in self.feature_groups:
            try:
                groups.append(self.sagemaker.describe_feature_group(FeatureGroupName=name))
            except self.sagemaker.exceptions.ClientError:
                continue  # not created (yet): its table is not in the catalog, as in Glue
        return [g for g in groups if g.get("OfflineStoreConfig", {}).get("DataCatalogConfig")]

    def query(self, sql: str, where: str) -> Any:
        """A DuckDB relation's rows as (columns, rows)."""
        import duckdb

        with tempfile.TemporaryDirectory(prefix="gitops-athena-") as tmp:
            con = duckdb.connect()
            for group in self._tables():
                catalog = group["OfflineStoreConfig"]["DataCatalogConfig"]
                database, table = self.tables.get(
                    group["FeatureGroupName"], (catalog["Database"], catalog["TableName"])
                )
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"')
                columns = ", ".join(
                    f'"{d["FeatureName"]}" {OFFLINE_TYPES[d["FeatureType"]]}' for d in group["FeatureDefinitions"]
                )
                con.execute(
                    f'CREATE TABLE "{database}"."{table}" ({columns}, write_time TIMESTAMPTZ,'
                    " api_invocation_time TIMESTAMPTZ, is_deleted BOOLEAN)"
                )
                base = group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"].rstrip("/") + "/"
                bucket, prefix = split_uri(base, where)
                if list_keys(self.s3, bucket, prefix):
                    local = Path(tmp) / database / table
                    download_prefix(self.s3, base, local, where)
                    con.execute(
                        f'INSERT INTO "{database}"."{table}" BY NAME SELECT * EXCLUDE (year, month, day, hour)'
                        f" FROM read_parquet('{local}/**/*.parquet', hive_partitioning = true)"
                    )
            try:
                result = con.execute(sql)
            except duckdb.Error as exc:
                raise StepFailed(f"{where}: the query failed: {str(exc).splitlines()[0]}") from None
            names = [d[0] for d in result.description]
            return names, result.fetchall()

    def run_dataset_definition(self, definition: dict, local_path: Path) -> None:
        """Run an AthenaDatasetDefinition: result to OutputS3Uri, then into local_path."""
        import duckdb

        where = f"AthenaDatasetDefinition of {definition.get('Database')}"
        fmt = definition.get("OutputFormat", "TEXTFILE")
        if fmt not in SUPPORTED_FORMATS:
            raise StepFailed(f"{where}: not run locally: OutputFormat {fmt} (have {', '.join(SUPPORTED_FORMATS)})")
        columns, rows = self.query(str(definition["QueryString"]), where)
        output = str(definition["OutputS3Uri"]).rstrip("/")
        name = f"{uuid.uuid4()}.{SUPPORTED_FORMATS[fmt]}"
        with tempfile.TemporaryDirectory(prefix="gitops-athena-out-") as tmp:
            con = duckdb.connect()
            con.execute(f"CREATE TABLE result ({', '.join(f'{_q(c)} VARCHAR' for c in columns)})")
            if rows:
                con.executemany(
                    f"INSERT INTO result VALUES ({', '.join('?' for _ in columns)})",
                    [[None if v is None else str(v) for v in row] for row in rows],
                )
            target = Path(tmp) / name
            options = {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet", "json": "FORMAT json"}
            con.execute(f"COPY result TO '{target}' ({options[SUPPORTED_FORMATS[fmt]]})")
            con.close()
            bucket, key = split_uri(f"{output}/{name}", where)
            self.s3.upload_file(str(target), bucket, key)
        download_prefix(self.s3, f"{output}/{name}", local_path, where)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
