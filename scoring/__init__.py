"""Batch prediction over new, not-yet-labelled crops in the bucket: plain functions the flow calls."""
