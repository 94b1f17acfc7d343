"""Primitives every layer may use: pure-ASGI response helpers (`asgi`) and context binding (`binding`)."""
