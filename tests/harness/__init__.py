"""Helpers shared by the integration and e2e tests: running the proxy against a topology.

The PostgreSQL side lives in `pgcat_py.localpg` (the demo uses it too); the `pg_topology`
session fixture in tests/conftest.py creates one topology per test session.
"""
