"""Deployments: the workflow of one instance, rollouts in dependency waves, rollback, bootstrap."""
