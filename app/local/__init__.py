"""Local mode: the same tools served over stdio to desktop clients, as the user signed in with MSAL."""
