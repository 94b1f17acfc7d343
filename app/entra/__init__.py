"""Entra ID as code: what each server's app registration must hold (from its catalog and settings), Microsoft Graph
reads and writes to make it so (`entra register`), and the registration checks `doctor` runs. Plain values in; only
the command line (app/cli/) reads settings."""
