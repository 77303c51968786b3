"""CodePipeline actions of the env pipeline: source, verb build, manual approval."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codecommit as codecommit
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_sns as sns

from gitops.config import StageConfig
from gitops.promotion.evidence import EXECUTION_ENV

SOURCE_NAMESPACE = "SourceVariables"
BRANCH = "main"
RELEASE_MANIFEST = "release/manifest.json"
# Pipeline variables CodePipeline resolves per execution.
COMMIT_ID = f"#{{{SOURCE_NAMESPACE}.CommitId}}"
EXECUTION_ID = "#{codepipeline.PipelineExecutionId}"
RELEASE_MODEL = "release/model.json"  # the model the release serves (gitops.model.pin)


def env_repository_source(
    repository: codecommit.IRepository, output: codepipeline.Artifact
) -> actions.CodeCommitSourceAction:
    return actions.CodeCommitSourceAction(
        action_name="EnvRepository",
        repository=repository,
        branch=BRANCH,
        output=output,
        trigger=actions.CodeCommitTrigger.EVENTS,
        variables_namespace=SOURCE_NAMESPACE,
    )


def verb_build(action_name: str, project: codebuild.IProject, source: codepipeline.Artifact) -> actions.CodeBuildAction:
    """Runs one gitops verb; the build learns which commit and execution it serves."""
    return actions.CodeBuildAction(
        action_name=action_name,
        project=project,
        input=source,
        environment_variables={
            "RELEASE_COMMIT": codebuild.BuildEnvironmentVariable(value=COMMIT_ID),
            # promote reads it to find its own execution's Verify and Approve results.
            EXECUTION_ENV: codebuild.BuildEnvironmentVariable(value=EXECUTION_ID),
        },
    )


def release_approval(cfg: StageConfig, topic: sns.ITopic) -> actions.ManualApprovalAction:
    """The approval click: names the exact release (commit of the env repository) being promoted."""
    # The link opens the served model of exactly this commit: package, artifact sha256, image digest, metrics.
    model_url = (
        f"https://{cfg.region}.console.aws.amazon.com/codesuite/codecommit/repositories/"
        f"{cfg.env_repository_name}/browse/{COMMIT_ID}/--/{RELEASE_MODEL}?region={cfg.region}"
    )
    return actions.ManualApprovalAction(
        action_name="ApproveRelease",
        notification_topic=topic,
        additional_information=(
            f"Release {RELEASE_MANIFEST} at {cfg.env_repository_name}@{COMMIT_ID} is deployed and verified"
            f" in '{cfg.stage}'. It serves the model in {RELEASE_MODEL} (linked; `gitops diff --from"
            f" {cfg.stage} --stage {cfg.promote_to}` names the change). Approve to promote exactly these bytes"
            f" and that model to '{cfg.promote_to}'."
        ),
        external_entity_link=model_url,
        timeout=Duration.days(7),
    )
