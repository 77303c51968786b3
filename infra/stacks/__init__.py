"""The four stacks of a stage, in deployment order: Base, Network, MLOps, Inference."""
