"""Small factories for the pieces every stack reuses: keys, buckets, log groups, policies, builds, actions."""
