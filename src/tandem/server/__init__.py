"""I/O adapters: HTTP API, WebSocket endpoints, static files. They parse, call the core, send."""
