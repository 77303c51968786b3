"""Stage config: the shipped files are valid, and every kind of mistake names the file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitops.config import load_stage_config, load_stages
from gitops.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_stages_load_in_promotion_order():
    stages = load_stages(ROOT)
    assert list(stages) == ["dev", "prod"]
    assert stages["dev"].promote_to == "prod"
    assert stages["prod"].promote_to is None
    assert stages["dev"].account != stages["prod"].account


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "infra" / "config"
    shutil.copytree(ROOT / "infra" / "config", target)
    return target


def _write(config_dir: Path, name: str, text: str) -> Path:
    path = config_dir / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("stage: dev\naccount: '111111111111'\nregion: eu-west-1\nbogus: 1\n", "unknown field 'bogus'"),
        (
            "stage: dev\naccount: '111111111111'\nregion: eu-west-1\ninference:\n  max_capacity: two\n",
            "field 'inference.max_capacity'",
        ),
        ("stage: dev\naccount: 111111111111\nregion: eu-west-1\n", "field 'account'"),
        ("stage: dev\naccount: '1234'\nregion: eu-west-1\n", "field 'account'"),
        ("stage: dev\naccount: '111111111111'\nregion: Ireland\n", "field 'region'"),
        (
            "stage: dev\naccount: '111111111111'\nregion: eu-west-1\nnetwork:\n  vpc_cidr: 8.8.0.0/16\n",
            "field 'network.vpc_cidr'",
        ),
        (
            "stage: dev\naccount: '111111111111'\nregion: eu-west-1\ninference:\n  min_capacity: 5\n"
            "  max_capacity: 2\n",
            "min_capacity must not exceed max_capacity",
        ),
        ("stage: qa\naccount: '111111111111'\nregion: eu-west-1\n", "field 'stage' is 'qa'"),
        ("stage: [dev\n", "not valid YAML"),
        (
            "stage: dev\naccount: '111111111111'\nregion: eu-west-1\nregion: us-east-1\n",
            "line 4: duplicate key 'region' (first on line 3)",
        ),
        (
            "stage: dev\naccount: '111111111111'\nregion: eu-westt-1\n",
            "field 'region': not an AWS region botocore knows; did you mean 'eu-west-1'?",
        ),
        ("- dev\n", "expected a mapping"),
    ],
)
def test_bad_stage_config_names_file_and_field(config_dir: Path, body: str, expected: str):
    path = _write(config_dir, "dev.yaml", body)
    with pytest.raises(ConfigError) as info:
        load_stage_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert expected in message
    assert "\n" not in message


def test_a_repeated_key_in_a_shipped_stage_file_is_refused_naming_its_line(config_dir: Path):
    # Found: `region` written twice was accepted and the last one silently won.
    path = config_dir / "prod.yaml"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines, start=1) if line.startswith("region:"))
    _write(config_dir, "prod.yaml", path.read_text() + "region: us-east-1\n")
    with pytest.raises(ConfigError) as info:
        load_stages(config_dir.parents[1])
    assert str(info.value) == (
        f"infra/config/prod.yaml: line {len(lines) + 1}: duplicate key 'region' (first on line {first}); keep one"
    )


def test_every_region_botocore_knows_is_accepted_and_only_those():
    from gitops.config import known_regions

    regions = known_regions()
    assert {"eu-west-1", "us-east-1", "ap-southeast-3", "us-gov-west-1", "cn-north-1"} <= regions
    assert "eu-westt-1" not in regions and len(regions) > 30


def test_promote_to_unknown_stage_is_refused(config_dir: Path):
    text = (config_dir / "dev.yaml").read_text().replace("promote_to: prod", "promote_to: staging")
    _write(config_dir, "dev.yaml", text)
    with pytest.raises(ConfigError, match=r"dev\.yaml: field 'promote_to': no stage 'staging'"):
        load_stages(config_dir.parents[1])


def test_promotion_cycle_is_refused(config_dir: Path):
    _write(config_dir, "prod.yaml", (config_dir / "prod.yaml").read_text() + "promote_to: dev\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_stages(config_dir.parents[1])


def test_no_stage_files_is_an_error(tmp_path: Path):
    (tmp_path / "infra" / "config").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no stage config files"):
        load_stages(tmp_path)


def test_derived_names_are_stage_scoped():
    stages = load_stages(ROOT)
    dev, prod = stages["dev"], stages["prod"]
    assert dev.artifact_bucket_name != prod.artifact_bucket_name
    assert dev.artifact_bucket_name == f"mlops-dev-artifacts-{dev.account}-{dev.region}"
    assert len(dev.artifact_bucket_name) <= 63
    assert dev.pipeline_name("feature_ingestion") == "mlops-dev-feature-ingestion"


def test_names_that_would_break_s3_limits_are_refused(config_dir: Path):
    path = _write(
        config_dir,
        "develop.yaml",
        "stage: develop\naccount: '111111111111'\nregion: ap-southeast-3\nproject: a-very-long-project-n\n",
    )
    with pytest.raises(ConfigError, match="exceeds S3's 63 characters"):
        load_stage_config(path)


# The serving app's settings (App stack) ---------------------------------------------------------

BASE = "stage: dev\naccount: '111111111111'\nregion: eu-west-1\napp:\n"


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("  min_tasks: 3\n  max_tasks: 2\n", "field 'app': min_tasks (3) must not exceed max_tasks (2)"),
        (
            "  cpu: 256\n  memory_mib: 4096\n",
            "field 'app': cpu 256 with memory_mib 4096 is not a Fargate task size (cpu 256 takes 512, 1024, 2048 MiB)",
        ),
        (
            "  cpu: 1024\n  memory_mib: 1536\n",
            "cpu 1024 with memory_mib 1536 is not a Fargate task size (cpu 1024 takes 2048-8192 MiB in steps of 1024)",
        ),
        ("  cpu: 300\n", "field 'app.cpu'"),
        ("  db_instance_class: t4g.micro\n", "field 'app.db_instance_class'"),
        ("  db_backup_retention_days: 0\n", "field 'app.db_backup_retention_days'"),
        ("  certificate_arn: my-cert\n", "field 'app.certificate_arn'"),
        ("  domain_names: [app.example.com]\n", "domain_names and viewer_certificate_arn go together"),
        ("  alarms:\n    cpu_percent: 180\n", "field 'app.alarms.cpu_percent'"),
        ("  monthly_budget_usd: 0\n", "field 'app.monthly_budget_usd'"),
    ],
)
def test_bad_app_settings_are_refused_in_one_line_naming_the_field(config_dir: Path, app: str, expected: str):
    path = _write(config_dir, "dev.yaml", BASE + app)
    with pytest.raises(ConfigError) as info:
        load_stage_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message
    assert "\n" not in message and len(message) < 260, message


def test_an_alb_certificate_of_another_region_is_refused(config_dir: Path):
    arn = "arn:aws:acm:us-east-1:111111111111:certificate/12345678-1234-1234-1234-123456789012"
    path = _write(config_dir, "dev.yaml", BASE + f"  certificate_arn: {arn}\n")
    with pytest.raises(
        ConfigError, match=r"app\.certificate_arn must be an ACM certificate of 111111111111 in eu-west-1"
    ):
        load_stage_config(path)


def test_every_fargate_size_the_config_accepts_is_one_aws_lists():
    from gitops.config import FARGATE_SIZES, AppConfig

    assert AppConfig(cpu=256, memory_mib=512).memory_mib == 512
    assert AppConfig(cpu=16384, memory_mib=122880).cpu == 16384
    assert FARGATE_SIZES[512] == (1024, 2048, 3072, 4096)
    assert FARGATE_SIZES[8192][:2] == (16384, 20480)  # steps of 4 GiB


def test_each_mistake_is_one_exact_line_naming_file_field_and_value(tmp_path: Path):
    def refusal(text: str | None) -> str:
        path = tmp_path / "stage.yaml"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError) as refused:
            load_stage_config(path, "infra/config/stage.yaml")
        return str(refused.value)

    assert refusal(None) == "infra/config/stage.yaml: stage config not found"
    assert refusal("- a list\n") == "infra/config/stage.yaml: expected a mapping of settings, got list"
    one = refusal("stage: dev\naccount: '111111111111'\nregion: eu-westt-1\n")
    assert one == (
        "infra/config/stage.yaml: field 'region': not an AWS region botocore knows;"
        " did you mean 'eu-west-1'? (got 'eu-westt-1')"
    )
    three = refusal("stage: dev\naccount: '1'\nregion: mars-1\nbogus: 1\n")
    assert three.startswith("infra/config/stage.yaml: field 'account': ") and three.endswith(" (got '1') (and 2 more)")
    assert refusal("stage: dev\naccount: '111111111111'\nregion: zz\n").endswith(
        "not an AWS region botocore knows (got 'zz')"
    )
    # Settings in UTF-8 whatever the machine's locale: a non-ASCII e-mail address is read as written.
    assert "(got 'prénom@example')" in refusal(
        "stage: dev\naccount: '111111111111'\nregion: eu-west-1\napproval_email: prénom@example\n"
    )


def test_a_promotion_to_a_stage_that_does_not_exist_names_the_stages_there_are(config_dir: Path):
    text = (config_dir / "dev.yaml").read_text().replace("promote_to: prod", "promote_to: qa")
    _write(config_dir, "dev.yaml", text)
    with pytest.raises(ConfigError) as refused:
        load_stages(config_dir.parents[1])
    assert str(refused.value) == "infra/config/dev.yaml: field 'promote_to': no stage 'qa' (have dev, prod)"


def test_the_stage_key_is_named_by_its_alias_in_the_stages_account_and_region():
    from gitops.config import kms_alias_arn

    dev = load_stages(ROOT)["dev"]
    assert kms_alias_arn(dev) == f"arn:aws:kms:{dev.region}:{dev.account}:alias/{dev.prefix}"


def test_a_mistake_across_fields_is_named_at_the_top_level(tmp_path: Path):
    path = tmp_path / "production.yaml"
    path.write_text(f"stage: production\naccount: '111111111111'\nregion: ap-southeast-2\nproject: {'p' * 20}\n")
    with pytest.raises(ConfigError, match=r"^production\.yaml: field '\(top level\)': project \+ stage too long"):
        load_stage_config(path, "production.yaml")
