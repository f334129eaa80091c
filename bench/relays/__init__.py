"""Bare relays Tandem's relay is measured against in the same run (bench/relay.py)."""
