"""ARNs of a stage's resources, built from the fixed names of StageConfig and infra.names."""

from __future__ import annotations

from dataclasses import dataclass

from gitops.config import StageConfig
from infra import names

# CDK's default bootstrap (qualifier hnb659fds) holds the stacks' file assets and version parameter.
CDK_QUALIFIER = "hnb659fds"


@dataclass(frozen=True)
class StageArns:
    """ARNs of a stage's resources; policies scope to these and to nothing wider."""

    cfg: StageConfig

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.cfg.region}:{self.cfg.account}:{resource}"

    @property
    def artifact_bucket(self) -> str:
        return f"arn:aws:s3:::{self.cfg.artifact_bucket_name}"

    def artifact_objects(self, prefix: str = "") -> str:
        return f"{self.artifact_bucket}/{prefix}*"

    @property
    def assets_bucket(self) -> str:
        return f"arn:aws:s3:::cdk-{CDK_QUALIFIER}-assets-{self.cfg.account}-{self.cfg.region}"

    @property
    def env_repository(self) -> str:
        return self._arn("codecommit", self.cfg.env_repository_name)

    @property
    def stacks(self) -> str:
        return self._arn("cloudformation", f"stack/{self.cfg.prefix}-*/*")

    @property
    def release_pipeline(self) -> str:
        return self._arn("codepipeline", names.release_pipeline_name(self.cfg))

    def build_project(self, verb: str) -> str:
        return self._arn("codebuild", f"project/{names.build_project_name(self.cfg, verb)}")

    def build_report_groups(self, verb: str) -> str:
        return self._arn("codebuild", f"report-group/{names.build_project_name(self.cfg, verb)}-*")

    def log_group(self, name: str) -> str:
        return self._arn("logs", f"log-group:{name}:*")

    @property
    def approval_topic(self) -> str:
        return self._arn("sns", names.approval_topic_name(self.cfg))

    @property
    def stage_roles(self) -> str:
        return f"arn:aws:iam::{self.cfg.account}:role/{self.cfg.prefix}-*"

    def role(self, name: str) -> str:
        return names.role_arn(self.cfg.account, name)

    @property
    def stage_parameters(self) -> str:
        return self._arn("ssm", f"parameter/{names.ssm_parameter_path(self.cfg)}/*")

    @property
    def bootstrap_version_parameter(self) -> str:
        return self._arn("ssm", f"parameter/cdk-bootstrap/{CDK_QUALIFIER}/version")

    def sagemaker(self, resource: str) -> str:
        return self._arn("sagemaker", resource)

    @property
    def model_package_group(self) -> str:
        return self.sagemaker(f"model-package-group/{self.cfg.model_package_group_name}")

    @property
    def model_packages(self) -> str:
        return self.sagemaker(f"model-package/{self.cfg.model_package_group_name}/*")

    @property
    def feature_group(self) -> str:
        return self.sagemaker(f"feature-group/{self.cfg.feature_group_name}")

    @property
    def endpoint(self) -> str:
        return self.sagemaker(f"endpoint/{self.cfg.endpoint_name}")

    @property
    def app_repository(self) -> str:
        return self._arn("ecr", f"repository/{self.cfg.app_repository_name}")

    @property
    def app_db_secret(self) -> str:
        """The app's DB secret: Secrets Manager appends six random characters to the name."""
        return self._arn("secretsmanager", f"secret:{names.app_db_secret_name(self.cfg)}-??????")

    @property
    def sagemaker_pipelines(self) -> str:
        return self.sagemaker(f"pipeline/{self.cfg.prefix}-*")

    @property
    def feature_store_catalog(self) -> list[str]:
        """The Glue database SageMaker registers offline-store tables in (its default)."""
        glue = f"arn:aws:glue:{self.cfg.region}:{self.cfg.account}"
        return [f"{glue}:catalog", f"{glue}:database/sagemaker_featurestore", f"{glue}:table/sagemaker_featurestore/*"]

    @property
    def athena_workgroup(self) -> str:
        """The training pipeline's workgroup only: never workgroup/primary."""
        return f"arn:aws:athena:{self.cfg.region}:{self.cfg.account}:workgroup/{self.cfg.athena_workgroup_name}"

    def any_in_stage(self, service: str, prefix: str) -> str:
        """Every resource of the service in the stage's account and region whose id starts with prefix."""
        return self._arn(service, f"{prefix}*")
