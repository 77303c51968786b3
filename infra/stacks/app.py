"""App stack: the serving app on ECS Fargate behind an internal ALB and CloudFront, with RDS PostgreSQL.

Deploy passes the release's image digest as the ImageDigest parameter (app.json); while it is empty
(no image pinned yet) the stack holds the cluster, load balancer, distribution, database, alarms and
budget, but no task definition or service. The image always comes from the stage's own repository
(AppImages stack), by digest: a tag could move, a digest cannot.
"""

from __future__ import annotations

from aws_cdk import Annotations, CfnCondition, CfnParameter, CfnResource, Duration, Fn, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from constructs import Construct

from gitops.config import StageConfig
from infra import names
from infra.components import app_monitoring, parameters
from infra.components.buckets import delivery_logs_bucket
from infra.components.log_groups import encrypted_log_group
from infra.components.topics import encrypted_topic
from infra.roles import app_deploy_statements
from infra.roles.arns import StageArns
from infra.roles.statements import allow, in_region
from infra.stacks.app_images import PUBLIC_CACHE_PREFIX
from infra.stacks.stage_stack import StageInputs, StageStack

HTTPS = 443
HTTP = 80
# Not PostgreSQL's default 5432: scanners of the VPC's address space find nothing on the usual port.
DB_PORT = 5433
APP_CONTAINER = "app"
COLLECTOR_CONTAINER = "otel-collector"
# The ADOT collector (OTLP in, X-Ray out), pulled through the stage's ECR cache of ECR Public.
COLLECTOR_IMAGE = "aws-observability/aws-otel-collector:v0.39.0"
COLLECTOR_CONFIG = "/etc/ecs/ecs-xray.yaml"
COLLECTOR_CPU, COLLECTOR_MEMORY_MIB = 64, 128
DIGEST_PATTERN = "^(sha256:[a-f0-9]{64})?$"


class AppStack(StageStack):
    def __init__(self, scope: Construct, id: str, *, inputs: StageInputs, **kwargs) -> None:
        super().__init__(scope, id, inputs=inputs, **kwargs)
        cfg = inputs.cfg
        key = parameters.stage_key(self, cfg)
        digest = CfnParameter(
            self,
            "ImageDigest",
            type="String",
            default="",
            allowed_pattern=DIGEST_PATTERN,
            description="sha256 digest of the app image in the stage's repository; empty means no service",
        )
        has_image = CfnCondition(
            self, "HasImage", expression=Fn.condition_not(Fn.condition_equals(digest.value_as_string, ""))
        )
        vpc = _stage_vpc(self, cfg)
        isolated = ec2.SubnetSelection(subnets=vpc.isolated_subnets)
        alb_sg, service_sg, db_sg = _security_groups(self, cfg, vpc)

        database = _database(self, cfg, vpc, isolated, db_sg, key)
        topic = encrypted_topic(
            self,
            "AlarmTopic",
            name=names.app_alarm_topic_name(cfg),
            display_name=f"{cfg.prefix} app alarms and budget",
            key=key,
            email=None,  # operators subscribe their own channel
        )
        logs_bucket = delivery_logs_bucket(
            self, "AccessLogsBucket", name=names.app_logs_bucket_name(cfg), retain=cfg.retain_data, expire_days=365
        )
        alb, target_group = _load_balancer(self, cfg, vpc, isolated, alb_sg, logs_bucket)
        _distribution(self, cfg, alb, logs_bucket)
        cluster = ecs.Cluster(
            self,
            "Cluster",
            cluster_name=cfg.app_cluster_name,
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        alarms = app_monitoring.alarms(self, cfg, topic, alb, target_group)
        app_monitoring.dashboard(self, cfg, alb, target_group, database)
        app_monitoring.budget(self, cfg, topic)

        serving = Construct(self, "Serving")
        _service(
            serving,
            cfg,
            key=key,
            digest=digest.value_as_string,
            cluster=cluster,
            isolated=isolated,
            service_sg=service_sg,
            target_group=target_group,
            database=database,
            rollback_alarms=alarms,
        )
        for child in serving.node.find_all():
            if CfnResource.is_cfn_resource(child):
                child.cfn_options.condition = has_image

    @staticmethod
    def deploy_statements(arns: StageArns) -> list[iam.PolicyStatement]:
        return app_deploy_statements.statements(arns)


def _stage_vpc(scope: Construct, cfg: StageConfig) -> ec2.IVpc:
    """The Network stack's VPC, from its parameters: subnet i lies in the region's i-th zone (network.py)."""
    subnets = parameters.read_list(scope, cfg, names.ISOLATED_SUBNET_IDS)
    Annotations.of(scope).acknowledge_warning(
        "@aws-cdk/aws-ec2:noSubnetRouteTableId",
        "the App stack adds no route and no gateway endpoint to the imported subnets; their route tables stay"
        " the Network stack's, which routes nothing out",
    )
    return ec2.Vpc.from_vpc_attributes(
        scope,
        "Vpc",
        vpc_id=parameters.read(scope, cfg, names.VPC_ID),
        vpc_cidr_block=cfg.network.vpc_cidr,
        availability_zones=[Fn.select(i, Fn.get_azs()) for i in range(cfg.network.max_azs)],
        isolated_subnet_ids=[Fn.select(i, subnets) for i in range(cfg.network.max_azs)],
    )


def _security_groups(
    scope: Construct, cfg: StageConfig, vpc: ec2.IVpc
) -> tuple[ec2.SecurityGroup, ec2.SecurityGroup, ec2.SecurityGroup]:
    """Load balancer <- CloudFront's VPC-origin interfaces; service <- load balancer only; DB <- service only."""
    port = HTTPS if cfg.app.certificate_arn else HTTP
    alb_sg = ec2.SecurityGroup(
        scope,
        "LoadBalancerSecurityGroup",
        vpc=vpc,
        description=f"{cfg.prefix}: app load balancer (from the CloudFront VPC origin inside the VPC)",
        allow_all_outbound=False,
    )
    # CloudFront reaches a VPC origin through network interfaces it places in the ALB's subnets:
    # their addresses are the VPC's own. Nothing outside the VPC has a route in.
    alb_sg.add_ingress_rule(ec2.Peer.ipv4(cfg.network.vpc_cidr), ec2.Port.tcp(port), "CloudFront VPC origin")
    service_sg = ec2.SecurityGroup(
        scope,
        "ServiceSecurityGroup",
        vpc=vpc,
        description=f"{cfg.prefix}: app tasks (from the load balancer only)",
        allow_all_outbound=False,
    )
    db_sg = ec2.SecurityGroup(
        scope,
        "DatabaseSecurityGroup",
        vpc=vpc,
        description=f"{cfg.prefix}: app database (from the app tasks only)",
        allow_all_outbound=False,
    )
    service_sg.add_ingress_rule(alb_sg, ec2.Port.tcp(names.APP_PORT), "From the load balancer")
    alb_sg.add_egress_rule(service_sg, ec2.Port.tcp(names.APP_PORT), "To the app tasks")
    db_sg.add_ingress_rule(service_sg, ec2.Port.tcp(DB_PORT), "From the app tasks")
    service_sg.add_egress_rule(db_sg, ec2.Port.tcp(DB_PORT), "To the app database")
    service_sg.add_egress_rule(
        ec2.Peer.ipv4(cfg.network.vpc_cidr), ec2.Port.tcp(HTTPS), "AWS APIs via interface endpoints"
    )
    # As for the SageMaker group (network.py): no route leads anywhere but the S3 gateway endpoint,
    # whose prefix list is a region lookup; ECR image layers come from S3.
    service_sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS), "ECR layers in S3 via the gateway endpoint")
    return alb_sg, service_sg, db_sg


def _database(
    scope: Construct,
    cfg: StageConfig,
    vpc: ec2.IVpc,
    isolated: ec2.SubnetSelection,
    db_sg: ec2.SecurityGroup,
    key: kms.IKey,
) -> rds.DatabaseInstance:
    engine = rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16_9)
    # Statements and connections logged (what an audit asks of a PostgreSQL); exported to CloudWatch.
    parameter_group = rds.ParameterGroup(
        scope,
        "DatabaseParameters",
        engine=engine,
        description=f"{cfg.prefix}: app database (TLS only, statements and connections logged)",
        parameters={
            "rds.force_ssl": "1",
            "log_statement": "ddl",
            "log_min_duration_statement": "1000",
            "log_connections": "1",
            "log_disconnections": "1",
        },
    )
    instance_class = cfg.app.db_instance_class.removeprefix("db.")
    return rds.DatabaseInstance(
        scope,
        "Database",
        engine=engine,
        instance_type=ec2.InstanceType(instance_class),
        vpc=vpc,
        vpc_subnets=isolated,
        security_groups=[db_sg],
        publicly_accessible=False,
        credentials=rds.Credentials.from_generated_secret(
            "app", secret_name=names.app_db_secret_name(cfg), encryption_key=key
        ),
        database_name="app",
        port=DB_PORT,
        monitoring_interval=Duration.seconds(60),
        monitoring_role=_monitoring_role(scope, cfg),
        parameter_group=parameter_group,
        storage_encrypted=True,
        storage_encryption_key=key,
        allocated_storage=cfg.app.db_storage_gib,
        storage_type=rds.StorageType.GP3,
        multi_az=cfg.app.db_multi_az,
        deletion_protection=cfg.retain_data,
        removal_policy=RemovalPolicy.SNAPSHOT if cfg.retain_data else RemovalPolicy.DESTROY,
        backup_retention=Duration.days(cfg.app.db_backup_retention_days),
        copy_tags_to_snapshot=True,
        delete_automated_backups=not cfg.retain_data,
        auto_minor_version_upgrade=True,
        iam_authentication=True,
        enable_performance_insights=True,
        performance_insight_encryption_key=key,
        cloudwatch_logs_exports=["postgresql", "upgrade"],
    )


def _monitoring_role(scope: Construct, cfg: StageConfig) -> iam.Role:
    """RDS enhanced monitoring: what AWS's managed policy grants, written out and held to its own log group."""
    arns = StageArns(cfg)
    role = iam.Role(
        scope,
        "DatabaseMonitoringRole",
        role_name=names.app_role_name(cfg, "db-monitoring"),
        assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
        description="RDS enhanced monitoring of the app database: OS metrics to the RDSOSMetrics log group",
    )
    # The log group's ARN with its streams (":*"): RDS names a stream per instance.
    role.add_to_policy(
        allow(
            [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:DescribeLogStreams",
                "logs:GetLogEvents",
                "logs:PutLogEvents",
                "logs:PutRetentionPolicy",
            ],
            [arns.log_group("RDSOSMetrics")],
            sid="OsMetricsLogs",
        )
    )
    return role


def _load_balancer(
    scope: Construct,
    cfg: StageConfig,
    vpc: ec2.IVpc,
    isolated: ec2.SubnetSelection,
    alb_sg: ec2.SecurityGroup,
    logs_bucket: s3.IBucket,
) -> tuple[elbv2.ApplicationLoadBalancer, elbv2.ApplicationTargetGroup]:
    alb = elbv2.ApplicationLoadBalancer(
        scope,
        "LoadBalancer",
        vpc=vpc,
        internet_facing=False,
        vpc_subnets=isolated,
        security_group=alb_sg,
        drop_invalid_header_fields=True,
        deletion_protection=cfg.retain_data,
    )
    alb.log_access_logs(logs_bucket, prefix="alb")
    target_group = elbv2.ApplicationTargetGroup(
        scope,
        "TargetGroup",
        vpc=vpc,
        port=names.APP_PORT,
        protocol=elbv2.ApplicationProtocol.HTTP,
        target_type=elbv2.TargetType.IP,
        deregistration_delay=Duration.seconds(30),
        health_check=elbv2.HealthCheck(
            path=names.APP_HEALTH_PATH,
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        ),
    )
    if cfg.app.certificate_arn:
        alb.add_listener(
            "HttpsListener",
            port=HTTPS,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_arn(cfg.app.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[target_group],
            open=False,
        )
    else:
        alb.add_listener(
            "HttpListener",
            port=HTTP,
            protocol=elbv2.ApplicationProtocol.HTTP,
            default_target_groups=[target_group],
            open=False,
        )
    return alb, target_group


def _distribution(
    scope: Construct, cfg: StageConfig, alb: elbv2.ApplicationLoadBalancer, logs_bucket: s3.IBucket
) -> cloudfront.Distribution:
    """CloudFront, the app's single entry point: viewers on HTTPS only, the ALB reached through a VPC origin."""
    https = bool(cfg.app.certificate_arn)
    origin = origins.VpcOrigin.with_application_load_balancer(
        alb,
        protocol_policy=(
            cloudfront.OriginProtocolPolicy.HTTPS_ONLY if https else cloudfront.OriginProtocolPolicy.HTTP_ONLY
        ),
        http_port=HTTP,
        https_port=HTTPS,
        origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        vpc_origin_name=f"{cfg.prefix}-app",
    )
    return cloudfront.Distribution(
        scope,
        "Distribution",
        comment=f"{cfg.prefix} app",
        default_behavior=cloudfront.BehaviorOptions(
            origin=origin,
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,  # predictions are per request
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
        ),
        # With a viewer certificate of the stage's domain, viewers need TLS 1.2; CloudFront's default
        # certificate (*.cloudfront.net) has its security policy fixed by AWS.
        **_viewer_certificate(scope, cfg),
        http_version=cloudfront.HttpVersion.HTTP2_AND_3,
        price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        enable_logging=True,
        log_bucket=logs_bucket,
        log_file_prefix="cloudfront/",
        web_acl_id=cfg.app.waf_web_acl_arn,
    )


def _viewer_certificate(scope: Construct, cfg: StageConfig) -> dict:
    if not cfg.app.viewer_certificate_arn:
        return {}
    return {
        "certificate": acm.Certificate.from_certificate_arn(scope, "ViewerCertificate", cfg.app.viewer_certificate_arn),
        "domain_names": list(cfg.app.domain_names),
        "minimum_protocol_version": cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
    }


def _service(
    scope: Construct,
    cfg: StageConfig,
    *,
    key: kms.IKey,
    digest: str,
    cluster: ecs.Cluster,
    isolated: ec2.SubnetSelection,
    service_sg: ec2.SecurityGroup,
    target_group: elbv2.ApplicationTargetGroup,
    database: rds.DatabaseInstance,
    rollback_alarms: list[str],
) -> ecs.FargateService:
    arns = StageArns(cfg)
    stack_scope = cluster.stack
    repository = ecr.Repository.from_repository_name(stack_scope, "AppRepository", cfg.app_repository_name)
    task_role = iam.Role(
        stack_scope,
        "TaskRole",
        role_name=names.app_role_name(cfg, "task"),
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description="The app: invoke the stage's endpoint, read its DB secret, send traces",
    )
    secret = database.secret
    assert secret is not None  # from_generated_secret always makes one
    for statement in [
        allow(["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"], [arns.endpoint], sid="InvokeStageEndpoint"),
        allow(
            ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], [secret.secret_arn], sid="ReadDbSecret"
        ),
        allow(
            ["kms:Decrypt"],
            [key.key_arn],
            {"StringEquals": {"kms:ViaService": f"secretsmanager.{cfg.region}.amazonaws.com"}},
            sid="DecryptDbSecret",
        ),
        # The collector sidecar's X-Ray calls: X-Ray has no resource-level permissions.
        allow(
            ["xray:GetSamplingRules", "xray:GetSamplingTargets", "xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            ["*"],
            in_region(cfg),
            sid="SendTraces",
        ),
    ]:
        task_role.add_to_policy(statement)
    execution_role = iam.Role(
        stack_scope,
        "TaskExecutionRole",
        role_name=names.app_role_name(cfg, "task-execution"),
        assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
        description="ECS agent: pull the app and collector images, write the task's logs",
    )
    execution_role.add_to_policy(allow(["ecr:GetAuthorizationToken"], ["*"], in_region(cfg), sid="EcrLogin"))
    execution_role.add_to_policy(
        allow(
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            [repository.repository_arn, arns.any_in_stage("ecr", f"repository/{PUBLIC_CACHE_PREFIX}/")],
            sid="PullImages",
        )
    )
    # The first pull through the cache creates its repository and imports the upstream image.
    execution_role.add_to_policy(
        allow(
            ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
            [arns.any_in_stage("ecr", f"repository/{PUBLIC_CACHE_PREFIX}/")],
            sid="PullThroughCache",
        )
    )
    execution_role.add_to_policy(
        allow(
            ["kms:Decrypt"],
            [key.key_arn],
            {"StringEquals": {"kms:ViaService": f"ecr.{cfg.region}.amazonaws.com"}},
            sid="DecryptImages",
        )
    )

    task = ecs.FargateTaskDefinition(
        scope,
        "TaskDefinition",
        family=f"{cfg.prefix}-app",
        cpu=cfg.app.cpu,
        memory_limit_mib=cfg.app.memory_mib,
        task_role=task_role,
        execution_role=execution_role,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64, operating_system_family=ecs.OperatingSystemFamily.LINUX
        ),
        volumes=[ecs.Volume(name="tmp")],
    )
    Annotations.of(task).acknowledge_warning(
        "@aws-cdk/aws-ecs:ecrImageRequiresPolicy",
        "the execution role above is granted pull on exactly the stage's app repository and the collector's cache",
    )
    log_group = encrypted_log_group(
        stack_scope,
        "AppLogs",
        name=names.app_log_group_name(cfg),
        key=key,
        retention_days=cfg.app.log_retention_days,
        retain=cfg.retain_data,
    )
    registry = f"{cfg.account}.dkr.ecr.{cfg.region}.amazonaws.com"
    collector = task.add_container(
        COLLECTOR_CONTAINER,
        image=ecs.ContainerImage.from_registry(f"{registry}/{PUBLIC_CACHE_PREFIX}/{COLLECTOR_IMAGE}"),
        command=[f"--config={COLLECTOR_CONFIG}"],
        cpu=COLLECTOR_CPU,
        memory_limit_mib=COLLECTOR_MEMORY_MIB,
        essential=True,
        readonly_root_filesystem=True,
        logging=ecs.LogDrivers.aws_logs(stream_prefix="collector", log_group=log_group),
    )
    app = task.add_container(
        APP_CONTAINER,
        image=ecs.ContainerImage.from_registry(f"{registry}/{cfg.app_repository_name}@{digest}"),
        essential=True,
        readonly_root_filesystem=True,
        port_mappings=[ecs.PortMapping(container_port=names.APP_PORT, protocol=ecs.Protocol.TCP)],
        # Names and addresses only: the DB credentials are read from Secrets Manager at run time (rotation-ready).
        environment={
            "APP_STAGE": cfg.stage,
            "AWS_REGION": cfg.region,
            "APP_ENDPOINT_NAME": cfg.endpoint_name,
            "APP_DB_SECRET_ARN": secret.secret_arn,
            "APP_PORT": str(names.APP_PORT),
            "APP_TRACE_EXPORTER": "otlp",
            "OTEL_SERVICE_NAME": f"{cfg.prefix}-app",
            # The app exports OTLP over HTTP (app/prediction_service/telemetry.py) to the ADOT sidecar.
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
            "OTEL_PROPAGATORS": "xray",
            "OTEL_PYTHON_ID_GENERATOR": "xray",
        },
        health_check=ecs.HealthCheck(
            # Liveness only (the image's own HEALTHCHECK): readiness of the DB and the endpoint is the
            # load balancer's check, so an endpoint outage drains traffic instead of restarting tasks.
            command=["CMD", "python", "-m", "prediction_service.liveness"],
            interval=Duration.seconds(30),
            timeout=Duration.seconds(5),
            retries=3,
            start_period=Duration.seconds(30),
        ),
        stop_timeout=Duration.seconds(30),
        logging=ecs.LogDrivers.aws_logs(stream_prefix="app", log_group=log_group),
    )
    app.add_mount_points(ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False))
    app.add_container_dependencies(
        ecs.ContainerDependency(container=collector, condition=ecs.ContainerDependencyCondition.START)
    )

    service = ecs.FargateService(
        scope,
        "Service",
        service_name=cfg.app_service_name,
        cluster=cluster,
        task_definition=task,
        desired_count=cfg.app.min_tasks,
        min_healthy_percent=100,
        max_healthy_percent=200,
        assign_public_ip=False,
        vpc_subnets=isolated,
        security_groups=[service_sg],
        circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
        deployment_alarms=ecs.DeploymentAlarmConfig(
            alarm_names=rollback_alarms, behavior=ecs.AlarmBehavior.ROLLBACK_ON_ALARM
        ),
        health_check_grace_period=Duration.seconds(60),
        platform_version=ecs.FargatePlatformVersion.VERSION1_4,
        enable_execute_command=False,
        propagate_tags=ecs.PropagatedTagSource.SERVICE,
    )
    target_group.add_target(service.load_balancer_target(container_name=APP_CONTAINER, container_port=names.APP_PORT))
    scaling = service.auto_scale_task_count(min_capacity=cfg.app.min_tasks, max_capacity=cfg.app.max_tasks)
    scaling.scale_on_cpu_utilization(
        "CpuScaling",
        target_utilization_percent=cfg.app.target_cpu_percent,
        scale_in_cooldown=Duration.seconds(300),
        scale_out_cooldown=Duration.seconds(60),
    )
    scaling.scale_on_request_count(
        "RequestScaling",
        requests_per_target=cfg.app.target_requests_per_task,
        target_group=target_group,
        scale_in_cooldown=Duration.seconds(300),
        scale_out_cooldown=Duration.seconds(60),
    )
    return service
