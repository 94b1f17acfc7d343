"""Secrets at run time: the store that holds them, re-reads them in the background, and serves `secret()`."""
