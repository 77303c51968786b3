"""The release page: one static, self-contained HTML file per release for the PR review and the approval click."""
