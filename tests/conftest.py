"""Shared pytest configuration. The etcd fixtures come from fyerreg's own plugin (entry point)."""

pytest_plugins = ["pytester"]
