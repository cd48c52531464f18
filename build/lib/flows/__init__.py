"""The tagloop command line, settings and flows."""
