"""The CLI verbs, one module each; importing a module registers its commands on gitops.cli.app."""
