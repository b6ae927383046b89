"""The package version, in one place (read by pyproject and written into every output)."""

__version__ = "0.1.0"
