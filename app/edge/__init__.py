"""The edge of the request path: forwarded headers, Host/Origin, body size, throttles, rate limits and concurrency
caps.
"""
