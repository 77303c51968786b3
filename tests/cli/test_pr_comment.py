"""scripts/pr-comment: the PR's one comment is found by its marker and author and edited in place."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A stand-in for `gh api`: answers the comment listing from COMMENTS (applying the script's jq filter
# with Python's json, as `gh --jq` would) and records every call with its body.
FAKE_GH = r"""#!/usr/bin/env python3
import json, os, re, sys
args = sys.argv[1:]
log = open(os.environ["GH_LOG"], "a")
if "--jq" in args:
    jq = args[args.index("--jq") + 1]
    author = re.search(r'login == "([^"]+)"', jq).group(1)
    marker = re.search(r'startswith\("([^"]+)"\)', jq).group(1)
    for c in json.loads(os.environ["COMMENTS"]):
        if c["user"]["login"] == author and c["body"].startswith(marker):
            print(c["id"])
    sys.exit(0)
body = next(a for a in args if a.startswith("body=@"))[6:]
log.write(json.dumps({"args": args[:4], "body": open(body).read()}) + "\n")
"""


def _run(tmp_path: Path, comments: list[dict]) -> list[dict]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH)
    gh.chmod(0o755)
    diff = tmp_path / "diff.md"
    diff.write_text("### Release `abc` against `def`\n")
    log = tmp_path / "gh.log"
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GH_LOG": str(log),
        "COMMENTS": json.dumps(comments),
        "GITHUB_REPOSITORY": "org/repo",
        "GH_TOKEN": "x",
    }
    done = subprocess.run(
        [
            str(ROOT / "scripts" / "pr-comment"),
            "7",
            str(diff),
            "https://github.com/org/repo/actions/runs/1/artifacts/2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_its_own_comment_is_edited_even_when_others_came_after_it(tmp_path):
    comments = [
        {"id": 11, "user": {"login": "github-actions[bot]"}, "body": "<!-- gitops-diff -->\nold"},
        {"id": 12, "user": {"login": "github-actions[bot]"}, "body": "coverage report"},  # the bot's last comment
        {"id": 13, "user": {"login": "reviewer"}, "body": "<!-- gitops-diff --> quoted by a person"},
    ]
    (call,) = _run(tmp_path, comments)
    assert call["args"] == ["api", "--method", "PATCH", "repos/org/repo/issues/comments/11"]
    body = call["body"]
    assert body.startswith("<!-- gitops-diff -->\n### Release `abc`")
    assert "[release.html](https://github.com/org/repo/actions/runs/1/artifacts/2)" in body


def test_without_its_comment_one_is_created(tmp_path):
    (call,) = _run(tmp_path, [{"id": 12, "user": {"login": "github-actions[bot]"}, "body": "coverage report"}])
    assert call["args"] == ["api", "--method", "POST", "repos/org/repo/issues/7/comments"]
