"""Tandem: self-hosted, security-first co-browsing."""

# The one version number: pyproject.toml reads it from here (hatch), and sdk/build.mjs puts it
# into the SDK bundle (`Tandem.version`). Bump it only here.
__version__ = "0.2.0"
