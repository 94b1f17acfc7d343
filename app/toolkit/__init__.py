"""Tooling around the server: scaffolding, `tools.lock`, supply chain (audit, SBOM) and the pytest kit."""
