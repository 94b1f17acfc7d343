"""Identity and authorization: token validation and keys, the principal, challenges, authorization before dispatch,
Protected Resource Metadata, on-behalf-of and the dev issuer.
"""
