"""Tandem: self-hosted, security-first co-browsing."""

__version__ = "0.1.0"
