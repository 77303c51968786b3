"""MLOps stack: buckets, registry, feature group, env repository, release pipeline and its builds."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match, Template
from infra_synth import (
    ROOT,
    STACK_IDS,
    STAGE_NAMES,
    STAGES,
    Synth,
    cfg_of,
)

from infra import names
from infra.components.buildspecs import read_buildspec
from pipeline_defs.features import EVENT_TIME, FEATURES, RECORD_IDENTIFIER

pytestmark = pytest.mark.integration  # every test here needs the CDK app (tests/infra/conftest.py)

# MLOps ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_buckets_are_private_versioned_tls_only_and_the_artifacts_kms_encrypted(synth, stage):
    cfg = cfg_of(stage)
    buckets = synth.resources(stage, "MLOps", "AWS::S3::Bucket")
    by_name = {b["Properties"]["BucketName"]: (k, b) for k, b in buckets.items()}
    assert set(by_name) == {cfg.artifact_bucket_name, names.access_logs_bucket_name(cfg)}
    policies = synth.resources(stage, "MLOps", "AWS::S3::BucketPolicy").values()
    for logical_id, bucket in by_name.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any("NoncurrentVersionExpiration" in r for r in rules)
        assert any("AbortIncompleteMultipartUpload" in r for r in rules)
        assert bucket["DeletionPolicy"] == ("Retain" if cfg.retain_data else "Delete")
        policy = next(p for p in policies if p["Properties"]["Bucket"] == {"Ref": logical_id})
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ), f"{props['BucketName']}: no TLS-only statement"
    artifact_id, artifact = by_name[cfg.artifact_bucket_name]
    encryption = artifact["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]
    logs_id, logs_bucket = by_name[names.access_logs_bucket_name(cfg)]
    assert artifact["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    # S3 delivers server access logs only to SSE-S3 buckets.
    logs_encryption = logs_bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert logs_encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_model_registry_and_feature_group_follow_config_and_schema(synth, stage):
    cfg = cfg_of(stage)
    group = synth.one(stage, "MLOps", "AWS::SageMaker::ModelPackageGroup")["Properties"]
    assert group["ModelPackageGroupName"] == cfg.model_package_group_name
    features = synth.one(stage, "MLOps", "AWS::SageMaker::FeatureGroup")["Properties"]
    assert features["FeatureGroupName"] == cfg.feature_group_name
    assert features["FeatureDefinitions"] == [{"FeatureName": f.name, "FeatureType": f.feature_type} for f in FEATURES]
    assert features["RecordIdentifierFeatureName"] == RECORD_IDENTIFIER
    assert features["EventTimeFeatureName"] == EVENT_TIME
    assert features["RoleArn"] == cfg.sagemaker_execution_role_arn
    assert features["OnlineStoreConfig"]["SecurityConfig"]["KmsKeyId"]
    offline = features["OfflineStoreConfig"]["S3StorageConfig"]
    assert offline["S3Uri"].startswith(f"s3://{cfg.artifact_bucket_name}/") and offline["KmsKeyId"]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_env_repository_is_seeded_from_the_stage_directory(synth, stage):
    cfg = cfg_of(stage)
    repo = synth.one(stage, "MLOps", "AWS::CodeCommit::Repository")["Properties"]
    assert repo["RepositoryName"] == cfg.env_repository_name and repo["Code"]["BranchName"] == "main"
    assert repo["KmsKeyId"]
    asset_hash = repo["Code"]["S3"]["Key"].removesuffix(".zip")
    seeded = synth.outdir / f"asset.{asset_hash}"
    expected_dir = "seed_repo" if cfg.promote_to else "prod_repo"
    assert (seeded / "STAGE").read_text().strip() == stage
    assert sorted(p.name for p in seeded.iterdir()) == sorted(p.name for p in (ROOT / expected_dir).iterdir())


def pipeline_stages(synth: Synth, stage: str) -> list[dict]:
    return synth.one(stage, "MLOps", "AWS::CodePipeline::Pipeline")["Properties"]["Stages"]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_release_pipeline_stage_order(synth, stage):
    cfg = cfg_of(stage)
    order = [s["Name"] for s in pipeline_stages(synth, stage)]
    manual = [
        s["Name"]
        for s in pipeline_stages(synth, stage)
        for a in s["Actions"]
        if a["ActionTypeId"]["Category"] == "Approval"
    ]
    if cfg.promote_to:
        assert order == ["Source", "Deploy", "Verify", "Approve", "Promote"]
        assert manual == ["Approve"] and order.index("Approve") == order.index("Promote") - 1
    else:
        assert order == ["Source", "Deploy", "Verify"]
        assert manual == []


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_release_pipeline_is_v2_with_a_kms_artifact_store_and_the_env_repo_as_source(synth, stage):
    cfg = cfg_of(stage)
    props = synth.one(stage, "MLOps", "AWS::CodePipeline::Pipeline")["Properties"]
    assert props["PipelineType"] == "V2" and props["Name"] == names.release_pipeline_name(cfg)
    assert props["ArtifactStore"]["EncryptionKey"]["Type"] == "KMS"
    bucket_id = next(
        k
        for k, b in synth.resources(stage, "MLOps", "AWS::S3::Bucket").items()
        if b["Properties"]["BucketName"] == cfg.artifact_bucket_name
    )
    assert props["ArtifactStore"]["Location"] == {"Ref": bucket_id}
    source = props["Stages"][0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeCommit" and source["Configuration"]["BranchName"] == "main"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_build_projects_embed_the_buildspecs_and_are_encrypted_and_logged(synth, stage):
    cfg = cfg_of(stage)
    projects = {
        p["Properties"]["Name"]: p["Properties"]
        for p in synth.resources(stage, "MLOps", "AWS::CodeBuild::Project").values()
    }
    verbs = [names.DEPLOY, names.VERIFY] + ([names.PROMOTE] if cfg.promote_to else [])
    assert set(projects) == {names.build_project_name(cfg, verb) for verb in verbs}
    for verb in verbs:
        project = projects[names.build_project_name(cfg, verb)]
        assert json.loads(project["Source"]["BuildSpec"]) == read_buildspec(ROOT, verb)
        assert project["EncryptionKey"] and project["LogsConfig"]["CloudWatchLogs"]["Status"] == "ENABLED"
        env = {v["Name"]: v["Value"] for v in project["Environment"]["EnvironmentVariables"]}
        assert env["STAGE"] == stage
        assert project["ServiceRole"] == names.role_arn(cfg.account, names.build_role_name(cfg, verb))
    if cfg.promote_to:
        target = cfg_of(cfg.promote_to)
        env = {
            v["Name"]: v["Value"]
            for v in projects[names.build_project_name(cfg, names.PROMOTE)]["Environment"]["EnvironmentVariables"]
        }
        assert env["TARGET_STAGE"] == target.stage
        assert env["TARGET_REPOSITORY"] == target.env_repository_name
        assert env["TARGET_ROLE_ARN"] == names.role_arn(target.account, names.promotion_role_name(target))
    for group in synth.resources(stage, "MLOps", "AWS::Logs::LogGroup").values():
        assert group["Properties"]["KmsKeyId"] and group["Properties"]["RetentionInDays"] == cfg.log_retention_days


@pytest.mark.parametrize("stage", [s for s in STAGE_NAMES if STAGES[s].promote_to])
def test_approval_notifies_an_encrypted_topic_and_points_at_the_release(synth, stage):
    cfg = cfg_of(stage)
    template = Template.from_json(synth.template(stage, "MLOps"))
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": names.approval_topic_name(cfg), "KmsMasterKeyId": Match.any_value()}
    )
    if cfg.approval_email:
        template.has_resource_properties(
            "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": cfg.approval_email}
        )
    approve = next(s for s in pipeline_stages(synth, stage) if s["Name"] == "Approve")["Actions"][0]
    # The approver reads the release id `gitops approve` asks for, and the link opens the release page
    # the Verify build uploaded and exported (buildspecs/verify.yml exported-variables).
    assert "Release #{VerifyVariables.RELEASE_ID} (" in approve["Configuration"]["CustomData"]
    assert "#{SourceVariables.CommitId}" in approve["Configuration"]["CustomData"]
    assert approve["Configuration"]["ExternalEntityLink"] == "#{VerifyVariables.RELEASE_PAGE_URL}"
    verify = next(s for s in pipeline_stages(synth, stage) if s["Name"] == "Verify")["Actions"][0]
    assert verify["Namespace"] == "VerifyVariables"
    exported = read_buildspec(ROOT, names.VERIFY)["env"]["exported-variables"]
    assert {"RELEASE_ID", "RELEASE_PAGE_URL"} <= set(exported)


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_no_build_project_runs_privileged(synth, stage):
    projects = [
        (sid, p["Properties"])
        for sid in STACK_IDS
        for p in synth.resources(stage, sid, "AWS::CodeBuild::Project").values()
    ]
    assert projects
    for sid, project in projects:
        assert project["Environment"].get("PrivilegedMode", False) is False, f"{stage}/{sid}/{project['Name']}"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_training_queries_run_in_the_stage_workgroup_and_nothing_is_granted_on_primary(synth, stage):
    cfg = cfg_of(stage)
    group = synth.one(stage, "MLOps", "AWS::Athena::WorkGroup")["Properties"]
    assert group["Name"] == f"{cfg.prefix}-training"
    conf = group["WorkGroupConfiguration"]
    assert conf["EnforceWorkGroupConfiguration"] is True
    results = conf["ResultConfiguration"]
    assert results["OutputLocation"] == f"s3://{cfg.artifact_bucket_name}/athena-results/"
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"
    assert results["EncryptionConfiguration"]["KmsKey"]  # the stage key (an SSM-parameter reference)
    feature_group = synth.one(stage, "MLOps", "AWS::SageMaker::FeatureGroup")["Properties"]
    assert feature_group["OfflineStoreConfig"]["DataCatalogConfig"] == {
        "Catalog": "AwsDataCatalog",
        "Database": "sagemaker_featurestore",
        "TableName": cfg.feature_group_name.replace("-", "_"),
    }
    workgroup_arn = f"arn:aws:athena:{cfg.region}:{cfg.account}:workgroup/{cfg.prefix}-training"
    athena_statements = [
        st
        for stack in STACK_IDS
        for policy in synth.resources(stage, stack, "AWS::IAM::Role").values()
        for doc in policy["Properties"].get("Policies", [])
        for st in doc["PolicyDocument"]["Statement"]
        if any(
            str(a).startswith("athena:") for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
        )
    ]
    assert athena_statements, "no role may query the offline store"
    for st in athena_statements:
        assert st["Resource"] in (workgroup_arn, [workgroup_arn]), st
    for stack in STACK_IDS:
        assert "workgroup/primary" not in json.dumps(synth.template(stage, stack))


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_only_an_approved_package_in_the_training_stage_starts_the_propose_build(synth, stage):
    cfg = cfg_of(stage)
    rules = [
        r["Properties"]
        for r in synth.resources(stage, "MLOps", "AWS::Events::Rule").values()
        if r["Properties"].get("Name") == f"{cfg.prefix}-model-approved"
    ]
    if cfg.stage != "dev":  # models are trained, registered and approved in the first stage only
        assert rules == []
        return
    (rule,) = rules
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [cfg.model_package_group_name], "ModelApprovalStatus": ["Approved"]},
    }
    (target,) = rule["Targets"]
    assert f":project/{cfg.prefix}-model-propose" in json.dumps(target["Arn"])
    # EventBridge puts the matched event's ARN (a JSON string) where the placeholder stands.
    arn = "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-models/7"
    template = target["InputTransformer"]["InputTemplate"].replace("<detail-ModelPackageArn>", json.dumps(arn))
    override = json.loads(template)["environmentVariablesOverride"]
    assert override == [{"name": "PACKAGE_ARN", "type": "PLAINTEXT", "value": arn}]
    assert target["InputTransformer"]["InputPathsMap"] == {"detail-ModelPackageArn": "$.detail.ModelPackageArn"}
