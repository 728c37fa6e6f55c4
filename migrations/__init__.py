"""Alembic environment and versions for the zonegen schema (a package so it installs)."""
