"""IAM of a stage: the ARNs policies scope to, shared statement blocks, and one module per role."""
