"""The SQLite job index: its schema and file, lookups per key, history pages for the API, the migration
from the old JSON-lines file, the rebuild from the folders, and metrics.json.
Imports the top-level modules and folders/.
"""
