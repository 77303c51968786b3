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
from gitops.report.publish import PAGE_URL_VARIABLE, RELEASE_ID_VARIABLE

SOURCE_NAMESPACE = "SourceVariables"
VERIFY_NAMESPACE = "VerifyVariables"  # what buildspecs/verify.yml exports: the release id and its page's link
BRANCH = "main"
RELEASE_MANIFEST = "release/manifest.json"
# Pipeline variables CodePipeline resolves per execution.
COMMIT_ID = f"#{{{SOURCE_NAMESPACE}.CommitId}}"
EXECUTION_ID = "#{codepipeline.PipelineExecutionId}"
RELEASE_ID = f"#{{{VERIFY_NAMESPACE}.{RELEASE_ID_VARIABLE}}}"
RELEASE_PAGE_URL = f"#{{{VERIFY_NAMESPACE}.{PAGE_URL_VARIABLE}}}"
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


def verb_build(
    action_name: str, project: codebuild.IProject, source: codepipeline.Artifact, namespace: str | None = None
) -> actions.CodeBuildAction:
    """Runs one gitops verb; the build learns which commit and execution it serves (namespace: its exports)."""
    return actions.CodeBuildAction(
        action_name=action_name,
        project=project,
        input=source,
        variables_namespace=namespace,
        environment_variables={
            "RELEASE_COMMIT": codebuild.BuildEnvironmentVariable(value=COMMIT_ID),
            # promote reads it to find its own execution's Verify and Approve results.
            EXECUTION_ENV: codebuild.BuildEnvironmentVariable(value=EXECUTION_ID),
        },
    )


def release_approval(cfg: StageConfig, topic: sns.ITopic) -> actions.ManualApprovalAction:
    """The approval click: names the exact release (its id, as `gitops approve` asks for it, and the commit)
    and links to its release page, which the Verify build uploaded to the stage's bucket."""
    return actions.ManualApprovalAction(
        action_name="ApproveRelease",
        notification_topic=topic,
        additional_information=(
            f"Release {RELEASE_ID} ({cfg.env_repository_name}@{COMMIT_ID}) is deployed and verified in"
            f" '{cfg.stage}'. It serves the model in {RELEASE_MODEL} (the release page names it and its metrics)."
            f" Approve to promote exactly these bytes and that model to '{cfg.promote_to}'"
            f" (or: gitops approve --release {RELEASE_ID}). The link opens its release page."
        ),
        external_entity_link=RELEASE_PAGE_URL,
        timeout=Duration.days(7),
    )
