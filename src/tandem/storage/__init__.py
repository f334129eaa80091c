"""Persistent state behind one Protocol: :class:`~tandem.storage.base.Storage`."""
