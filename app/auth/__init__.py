"""Identity and authorization: this server as a resource (`ResourceServer`), token validation and keys, the
principal, challenges, authorization before dispatch, Protected Resource Metadata and on-behalf-of.
"""
