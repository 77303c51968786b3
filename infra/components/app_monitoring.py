"""What an operator of the serving app watches: its alarms (to the app topic), dashboard and monthly budget."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from constructs import Construct

from gitops.config import StageConfig
from infra import names

MINUTE = Duration.minutes(1)
# Budget alerts: actual spend past this share of the amount, and the month's forecast past all of it.
ACTUAL_ALERT_PERCENT = 80
FORECAST_ALERT_PERCENT = 100


def _service_metric(cfg: StageConfig, metric: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/ECS",
        metric_name=metric,
        dimensions_map={"ClusterName": cfg.app_cluster_name, "ServiceName": cfg.app_service_name},
        statistic="Average",
        period=MINUTE,
    )


def alarms(
    scope: Construct,
    cfg: StageConfig,
    topic: sns.ITopic,
    alb: elbv2.ApplicationLoadBalancer,
    target_group: elbv2.ApplicationTargetGroup,
) -> list[str]:
    """The app's alarms, each to the topic; returns the names a deployment rolls back on (5xx, unhealthy hosts)."""
    limits = cfg.app.alarms
    requests = alb.metrics.request_count(period=MINUTE, statistic="Sum")
    errors = target_group.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=MINUTE)
    error_rate = cloudwatch.MathExpression(
        expression="IF(requests > 0, 100 * errors / requests, 0)",
        using_metrics={"requests": requests, "errors": errors},
        label="5xx responses (% of requests)",
        period=MINUTE,
    )
    specs = {
        # The seed's alarm: CPU over the threshold for the whole of cpu_seconds (every minute of it).
        "cpu": (
            _service_metric(cfg, "CPUUtilization"),
            limits.cpu_percent,
            limits.cpu_seconds // 60,
            f"app CPU above {limits.cpu_percent} % for {limits.cpu_seconds} s",
        ),
        "5xx-rate": (
            error_rate,
            limits.error_rate_percent,
            3,
            f"more than {limits.error_rate_percent} % of requests answered 5xx for 3 minutes",
        ),
        "p90-latency": (
            target_group.metrics.target_response_time(period=MINUTE, statistic="p90"),
            limits.p90_latency_ms / 1000,  # TargetResponseTime is in seconds
            5,
            f"p90 response time above {limits.p90_latency_ms} ms for 5 minutes",
        ),
        "unhealthy-hosts": (
            target_group.metrics.unhealthy_host_count(period=MINUTE, statistic="Maximum"),
            1,
            3,
            "a target failed its health checks for 3 minutes",
        ),
    }
    action = actions.SnsAction(topic)
    for metric_id, (metric, threshold, minutes, description) in specs.items():
        alarm = cloudwatch.Alarm(
            scope,
            "Alarm" + "".join(part.capitalize() for part in metric_id.split("-")),
            alarm_name=names.app_alarm_name(cfg, metric_id),
            alarm_description=f"{cfg.prefix}: {description}",
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            if metric_id == "unhealthy-hosts"
            else cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=minutes,
            datapoints_to_alarm=minutes,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
    return [names.app_alarm_name(cfg, "5xx-rate"), names.app_alarm_name(cfg, "unhealthy-hosts")]


def dashboard(
    scope: Construct,
    cfg: StageConfig,
    alb: elbv2.ApplicationLoadBalancer,
    target_group: elbv2.ApplicationTargetGroup,
    database: rds.DatabaseInstance,
) -> cloudwatch.Dashboard:
    """Requests, 5xx, p90 latency, CPU and memory, DB connections, and the endpoint's latency behind the app."""
    endpoint_latency = cloudwatch.Metric(
        namespace="AWS/SageMaker",
        metric_name="ModelLatency",
        dimensions_map={"EndpointName": cfg.endpoint_name, "VariantName": "AllTraffic"},
        statistic="p90",
        period=MINUTE,
        label="endpoint model latency p90 (µs)",
    )
    board = cloudwatch.Dashboard(scope, "Dashboard", dashboard_name=f"{cfg.prefix}-app")
    board.add_widgets(
        cloudwatch.GraphWidget(
            title="Requests", left=[alb.metrics.request_count(period=MINUTE, statistic="Sum")], width=8
        ),
        cloudwatch.GraphWidget(
            title="5xx responses",
            left=[
                target_group.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=MINUTE),
                alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=MINUTE),
            ],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Response time p90 (s)",
            left=[target_group.metrics.target_response_time(period=MINUTE, statistic="p90")],
            width=8,
        ),
    )
    board.add_widgets(
        cloudwatch.GraphWidget(
            title="Tasks: CPU and memory (%)",
            left=[_service_metric(cfg, "CPUUtilization"), _service_metric(cfg, "MemoryUtilization")],
            width=8,
        ),
        cloudwatch.GraphWidget(
            title="Database connections", left=[database.metric_database_connections(period=MINUTE)], width=8
        ),
        cloudwatch.GraphWidget(title="Endpoint latency p90", left=[endpoint_latency], width=8),
    )
    return board


def budget(scope: Construct, cfg: StageConfig, topic: sns.Topic) -> budgets.CfnBudget:
    """The stage's monthly cost budget (resources tagged with its stage), alerting the app topic."""
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="BudgetAlerts",
            principals=[iam.ServicePrincipal("budgets.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": cfg.account}},
        )
    )
    subscriber = budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)
    return budgets.CfnBudget(
        scope,
        "Budget",
        budget=budgets.CfnBudget.BudgetDataProperty(
            budget_name=f"{cfg.prefix}-monthly",
            budget_type="COST",
            time_unit="MONTHLY",
            budget_limit=budgets.CfnBudget.SpendProperty(amount=cfg.app.monthly_budget_usd, unit="USD"),
            # Cost-allocation tag gitops:stage (activate it in Billing once per account).
            cost_filters={"TagKeyValue": [f"user:gitops:stage${cfg.stage}"]},
        ),
        notifications_with_subscribers=[
            budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind,
                    comparison_operator="GREATER_THAN",
                    threshold=percent,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=[subscriber],
            )
            for kind, percent in (("ACTUAL", ACTUAL_ALERT_PERCENT), ("FORECASTED", FORECAST_ALERT_PERCENT))
        ],
    )
