"""`python -m app.devissuer token|serve`: the command line reads settings, so it lives with the composition
(app/compose/devissuer.py); this is only its entry point."""

from app.compose.devissuer import main

if __name__ == "__main__":
    main()
