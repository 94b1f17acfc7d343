"""Primitives every layer may use: pure-ASGI helpers, context binding, drop-in module import, the startup error
root, host and secret names, and every reliance on a private SDK attribute (`sdk_private`, each assumption tested).
"""
