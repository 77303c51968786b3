"""The embedded target: moto server, local env repos, buildspec and CodePipeline runners, rehearsal."""
