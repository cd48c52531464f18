"""Per-crop features and (issue 5) drift and accuracy reports."""
