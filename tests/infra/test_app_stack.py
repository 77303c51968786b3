"""App and AppImages stacks: the serving app isolated, encrypted, least-privileged, rolled back on failure."""

from __future__ import annotations

import pytest
from infra_synth import STAGE_NAMES, as_list, cfg_of

from infra import names

pytestmark = pytest.mark.slow  # the session's one synthesis of the app


def _by_type(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def _one(template: dict, type_: str) -> tuple[str, dict]:
    (found,) = _by_type(template, type_).items()
    return found


def _group(template: dict, prefix: str) -> str:
    (logical,) = [k for k in _by_type(template, "AWS::EC2::SecurityGroup") if k.startswith(prefix)]
    return logical


def _ingress_of(template: dict, group: str) -> list[dict]:
    """Every ingress rule of a group: inline and as separate resources."""
    inline = template["Resources"][group]["Properties"].get("SecurityGroupIngress", [])
    separate = [
        r["Properties"]
        for r in _by_type(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
    ]
    return [*inline, *separate]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_tasks_run_in_the_isolated_subnets_without_a_public_ip(synth, stage):
    template = synth.template(stage, "App")
    _, service = _one(template, "AWS::ECS::Service")
    network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    for subnet in network["Subnets"]:
        index, source = subnet["Fn::Select"]
        assert source["Ref"].startswith("SsmParameterValue") and "isolatedsubnetids" in source["Ref"]
    assert len(network["Subnets"]) == cfg_of(stage).network.max_azs
    _, alb = _one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Properties"]["Scheme"] == "internal"
    assert alb["Properties"]["Subnets"] == network["Subnets"]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_the_database_is_private_encrypted_and_backed_up(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "App")
    _, db = _one(template, "AWS::RDS::DBInstance")
    props = db["Properties"]
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    key = props["KmsKeyId"]["Ref"]
    assert "kmskeyarn" in key  # the stage key, through the Base stack's parameter
    assert props["PerformanceInsightsKMSKeyId"] == {"Ref": key}
    assert props["BackupRetentionPeriod"] == cfg.app.db_backup_retention_days
    assert props["DBInstanceClass"] == cfg.app.db_instance_class
    assert props["MultiAZ"] is cfg.app.db_multi_az
    assert props["DeletionProtection"] is cfg.retain_data
    assert db["DeletionPolicy"] == ("Snapshot" if cfg.retain_data else "Delete")
    _, subnets = _one(template, "AWS::RDS::DBSubnetGroup")
    assert all("isolatedsubnetids" in s["Fn::Select"][1]["Ref"] for s in subnets["Properties"]["SubnetIds"])
    # Credentials are generated into Secrets Manager, encrypted with the stage key; none in the template.
    _, secret = _one(template, "AWS::SecretsManager::Secret")
    assert secret["Properties"]["Name"] == names.app_db_secret_name(cfg)
    assert secret["Properties"]["KmsKeyId"] == {"Ref": key}
    assert "GenerateSecretString" in secret["Properties"] and "SecretString" not in secret["Properties"]
    assert "MasterUserPassword" in props and "resolve:secretsmanager" in str(props["MasterUserPassword"])


def test_prod_database_is_multi_az_and_protected_and_its_service_cannot_be_deleted_unnoticed(synth):
    template = synth.template("prod", "App")
    _, db = _one(template, "AWS::RDS::DBInstance")
    assert (db["Properties"]["MultiAZ"], db["Properties"]["DeletionProtection"]) == (True, True)
    assert (db["DeletionPolicy"], db["UpdateReplacePolicy"]) == ("Snapshot", "Snapshot")
    _, alb = _one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
    assert attributes["deletion_protection.enabled"] == "true"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_everything_the_app_stores_is_encrypted(synth, stage):
    template = synth.template(stage, "App")
    for _, group in _by_type(template, "AWS::Logs::LogGroup").items():
        assert group["Properties"]["KmsKeyId"]
        assert group["Properties"]["LogGroupName"] == names.app_log_group_name(cfg_of(stage))
    for _, topic in _by_type(template, "AWS::SNS::Topic").items():
        assert topic["Properties"]["KmsMasterKeyId"]
    for _, bucket in _by_type(template, "AWS::S3::Bucket").items():
        rules = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # ALB/CloudFront logs: SSE-S3 only
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    images = synth.template(stage, "AppImages")
    _, repo = _one(images, "AWS::ECR::Repository")
    props = repo["Properties"]
    assert props["EncryptionConfiguration"]["EncryptionType"] == "KMS"
    assert props["EncryptionConfiguration"]["KmsKey"]
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert props["ImageTagMutability"] == "IMMUTABLE"
    assert props["LifecyclePolicy"]["LifecyclePolicyText"]
    assert props["RepositoryName"] == cfg_of(stage).app_repository_name


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_service_group_admits_only_the_load_balancer_and_the_db_only_the_service(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "App")
    alb_sg, service_sg, db_sg = (
        _group(template, "LoadBalancerSecurityGroup"),
        _group(template, "ServiceSecurityGroup"),
        _group(template, "DatabaseSecurityGroup"),
    )
    service_in = _ingress_of(template, service_sg)
    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"]) for r in service_in] == [
        ({"Fn::GetAtt": [alb_sg, "GroupId"]}, names.APP_PORT, names.APP_PORT)
    ]
    db_in = _ingress_of(template, db_sg)
    assert [r["SourceSecurityGroupId"] for r in db_in] == [{"Fn::GetAtt": [service_sg, "GroupId"]}]
    # The load balancer: from the VPC (CloudFront's VPC-origin interfaces live there), never 0.0.0.0/0.
    assert [r.get("CidrIp") for r in _ingress_of(template, alb_sg)] == [cfg.network.vpc_cidr]
    assert template["Resources"][db_sg]["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_task_role_invokes_only_the_stage_endpoint_and_reads_only_its_secret(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "App")
    role_id = next(
        k
        for k, r in _by_type(template, "AWS::IAM::Role").items()
        if r["Properties"]["RoleName"] == names.app_role_name(cfg, "task")
    )
    statements = [
        s
        for p in _by_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid) == {"InvokeStageEndpoint", "ReadDbSecret", "DecryptDbSecret", "SendTraces"}
    # InvokeEndpoint to predict; DescribeEndpoint for the app's readiness check (GET /health).
    assert set(as_list(by_sid["InvokeStageEndpoint"]["Action"])) == {
        "sagemaker:InvokeEndpoint",
        "sagemaker:DescribeEndpoint",
    }
    assert by_sid["InvokeStageEndpoint"]["Resource"] == (
        f"arn:aws:sagemaker:{cfg.region}:{cfg.account}:endpoint/{cfg.endpoint_name}"
    )
    (secret_id, _) = _one(template, "AWS::SecretsManager::SecretTargetAttachment")
    assert by_sid["ReadDbSecret"]["Resource"] == {"Ref": secret_id}  # the one secret, exactly
    assert set(as_list(by_sid["ReadDbSecret"]["Action"])) == {
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetSecretValue",
    }
    assert by_sid["DecryptDbSecret"]["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{cfg.region}.amazonaws.com"}
    }
    traces = by_sid["SendTraces"]
    assert all(a.startswith("xray:") for a in as_list(traces["Action"]))
    assert traces["Condition"] == {"StringEquals": {"aws:RequestedRegion": cfg.region}}
    for statement in statements:
        assert "*" not in as_list(statement["Action"]) and statement["Effect"] == "Allow"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_service_rolls_back_on_the_circuit_breaker_and_on_alarms(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "App")
    _, service = _one(template, "AWS::ECS::Service")
    deployment = service["Properties"]["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deployment["Alarms"] == {
        "AlarmNames": [names.app_alarm_name(cfg, "5xx-rate"), names.app_alarm_name(cfg, "unhealthy-hosts")],
        "Enable": True,
        "Rollback": True,
    }
    alarm_names = {a["Properties"]["AlarmName"] for a in _by_type(template, "AWS::CloudWatch::Alarm").values()}
    assert set(deployment["Alarms"]["AlarmNames"]) <= alarm_names


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_service_runs_the_pinned_digest_only_when_one_is_given(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "App")
    parameter = template["Parameters"]["ImageDigest"]
    assert (parameter["Default"], parameter["AllowedPattern"]) == ("", "^(sha256:[a-f0-9]{64})?$")
    assert template["Conditions"]["HasImage"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ImageDigest"}, ""]}]}
    conditional = {"AWS::ECS::Service", "AWS::ECS::TaskDefinition", "AWS::ApplicationAutoScaling::ScalableTarget"}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] in conditional or resource["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy":
            assert resource.get("Condition") == "HasImage", logical_id
        else:
            assert "Condition" not in resource, logical_id
    _, task = _one(template, "AWS::ECS::TaskDefinition")
    app = next(c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "app")
    registry = f"{cfg.account}.dkr.ecr.{cfg.region}.amazonaws.com"
    assert app["Image"] == {"Fn::Join": ["", [f"{registry}/{cfg.app_repository_name}@", {"Ref": "ImageDigest"}]]}
    assert app["ReadonlyRootFilesystem"] is True
    assert (task["Properties"]["Cpu"], task["Properties"]["Memory"]) == (str(cfg.app.cpu), str(cfg.app.memory_mib))
    collector = next(c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "otel-collector")
    assert collector["Image"].startswith(f"{registry}/ecr-public/aws-observability/aws-otel-collector:")


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_cloudfront_is_the_single_entry_through_a_vpc_origin(synth, stage):
    template = synth.template(stage, "App")
    origin_id, origin = _one(template, "AWS::CloudFront::VpcOrigin")
    alb_id, alb = _one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert origin["Properties"]["VpcOriginEndpointConfig"]["Arn"] == {"Ref": alb_id}
    _, distribution = _one(template, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    (only_origin,) = config["Origins"]
    assert only_origin["VpcOriginConfig"]["VpcOriginId"] == {"Fn::GetAtt": [origin_id, "Id"]}
    assert config["Logging"]["Bucket"]
    attributes = {a["Key"]: a["Value"] for a in alb["Properties"]["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_alarms_dashboard_scaling_and_budget_follow_the_stage_config(synth, stage):
    cfg = cfg_of(stage)
    template = synth.template(stage, "App")
    topic_id, _ = _one(template, "AWS::SNS::Topic")
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"] for a in _by_type(template, "AWS::CloudWatch::Alarm").values()
    }
    cpu = alarms[names.app_alarm_name(cfg, "cpu")]
    assert (cpu["MetricName"], cpu["Threshold"], cpu["ComparisonOperator"]) == (
        "CPUUtilization",
        cfg.app.alarms.cpu_percent,
        "GreaterThanThreshold",
    )
    assert cpu["Period"] * cpu["EvaluationPeriods"] == cfg.app.alarms.cpu_seconds == 300
    assert cpu["DatapointsToAlarm"] == cpu["EvaluationPeriods"]  # over the threshold for the whole time
    latency = alarms[names.app_alarm_name(cfg, "p90-latency")]
    assert (latency["ExtendedStatistic"], latency["Threshold"]) == ("p90", cfg.app.alarms.p90_latency_ms / 1000)
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    assert len(alarms) == 4
    _, board = _one(template, "AWS::CloudWatch::Dashboard")
    body = str(board["Properties"]["DashboardBody"])
    for metric in ("RequestCount", "HTTPCode_Target_5XX_Count", "TargetResponseTime", "CPUUtilization"):
        assert metric in body
    for metric in ("MemoryUtilization", "DatabaseConnections", "ModelLatency"):
        assert metric in body
    policies = _by_type(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]: p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
        for p in policies
    }
    assert metrics == {
        "ECSServiceAverageCPUUtilization": cfg.app.target_cpu_percent,
        "ALBRequestCountPerTarget": cfg.app.target_requests_per_task,
    }
    _, target = _one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
        cfg.app.min_tasks,
        cfg.app.max_tasks,
    )
    _, budget = _one(template, "AWS::Budgets::Budget")
    assert budget["Properties"]["Budget"]["BudgetLimit"] == {"Amount": cfg.app.monthly_budget_usd, "Unit": "USD"}
    for notification in budget["Properties"]["NotificationsWithSubscribers"]:
        assert notification["Subscribers"] == [{"SubscriptionType": "SNS", "Address": {"Ref": topic_id}}]


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_taggable_app_resource_carries_the_cost_allocation_tags(synth, stage):
    for stack_id in ("App", "AppImages"):
        template = synth.template(stage, stack_id)
        for logical_id, resource in template["Resources"].items():
            tags = resource.get("Properties", {}).get("Tags")
            if not isinstance(tags, list):
                continue
            keys = {t["Key"]: t["Value"] for t in tags}
            assert keys.get("gitops:stage") == stage, logical_id
            assert keys.get("gitops:component") == stack_id.lower(), logical_id
            assert keys.get("gitops:project") == cfg_of(stage).project, logical_id


def test_the_embedded_target_lists_what_it_cannot_create_of_the_app_stacks(synth):
    """moto creates no distribution, VPC origin, budget or RDS secret: each is named with why, none passed silently."""
    from gitops.local.projection import embedded_projection

    for stack_id in ("App", "AppImages"):
        template = synth.template("dev", stack_id)
        projection = embedded_projection(template)
        dropped = {d.logical_id: d for d in projection.dropped}
        kept = set(projection.template["Resources"])
        assert kept | set(dropped) >= set(template["Resources"]), stack_id
        assert all(d.reason for d in dropped.values())
        dropped_types = {d.type for d in dropped.values()}
        if stack_id == "App":
            assert {
                "AWS::CloudFront::Distribution",
                "AWS::CloudFront::VpcOrigin",
                "AWS::Budgets::Budget",
                "AWS::RDS::DBInstance",
                "AWS::ECS::Service",
            } <= dropped_types
        else:
            assert dropped_types == {"AWS::ECR::PullThroughCacheRule"}
            assert any(r["Type"] == "AWS::ECR::Repository" for r in projection.template["Resources"].values())


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_the_task_gives_the_app_every_setting_it_requires_on_the_port_it_serves(synth, stage):
    """The container contract, read from both sides: app/ settings and the task definition."""
    import sys

    from infra_synth import ROOT

    sys.path.insert(0, str(ROOT / "app"))
    from prediction_service.settings import Settings

    (_, task) = _one(synth.template(stage, "App"), "AWS::ECS::TaskDefinition")
    app = next(c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "app")
    env = {e["Name"]: e["Value"] for e in app["Environment"]}
    required = {
        "AWS_REGION" if name == "region" else f"APP_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.is_required()
    }
    assert required <= set(env), f"the app cannot start without {sorted(required - set(env))}"
    assert env["APP_TRACE_EXPORTER"] == "otlp" and env["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
    assert [m["ContainerPort"] for m in app["PortMappings"]] == [int(env["APP_PORT"])] == [names.APP_PORT]
    assert app["HealthCheck"]["Command"] == ["CMD", "python", "-m", "prediction_service.liveness"]
