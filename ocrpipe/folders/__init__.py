"""The data folder on disk: intake from in/, publishing to out/ archive/ error/, each job's state.json,
heartbeats and cancel requests, names and paths that fit every file system.
Imports only the top-level modules (config, errors, model, logs, locate, proctree).
"""
