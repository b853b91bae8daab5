"""Streaming readers of the input files: one record, or one bad line, per line."""
