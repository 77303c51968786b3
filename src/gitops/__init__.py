"""gitops: render, scan, publish, deploy, verify, approve and promote SageMaker MLOps releases."""

__version__ = "0.1.0"
