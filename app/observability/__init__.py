"""What the server records: OpenTelemetry, the per-operation observer, the hash-chained audit log, logging, redaction
and readiness.
"""
