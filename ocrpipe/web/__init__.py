"""The HTTP API on a thread: the server, its routes, /health and the status page. Read-only.
Imports everything below it up to engine/ (never cluster/).
"""
