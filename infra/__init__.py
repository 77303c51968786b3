"""The AWS CDK app: one Stage per infra/config/<stage>.yaml, each of stacks Base, Network, MLOps, Inference."""
