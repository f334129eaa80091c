"""Delivery of frames to the sockets of a session, behind one Protocol."""
