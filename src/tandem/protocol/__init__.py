"""The wire protocol: message types, their codec, and the pure session state machine."""
