"""Prefect tasks: thin wrappers over the plain functions in ingest/, recognizer/, monitoring/ (issue 6)."""
