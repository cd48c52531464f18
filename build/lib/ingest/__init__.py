"""Bucket -> validated, versioned dataset: storage, corrections contract, ingest, validation."""
