"""The development issuer: a stand-in for one Entra tenant on loopback, so `make run` needs no cloud account. It
serves Entra-shaped discovery documents, a JWKS and a token mint (`python -m app.devissuer token`), and a sign-in
page with the authorization-code and refresh grants for local OAuth clients. Development only: it refuses to run in
production, listens on loopback only, and takes nothing but its own `DevIssuerConfig` (config.py). Nothing in the
production packages imports it; the composition root plugs it in at one spot (app/compose/devissuer.py maps the
settings to its config, and app/main.py starts it beside the server when no Entra tenant is configured)."""
