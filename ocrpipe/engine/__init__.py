"""The scheduler and its steps: tick(now) collects outcomes, reaps stale work, admits new files, applies
decisions and dispatches to the PREP and OCR pools; the pools and their worker set-up.
Imports the top-level modules, folders/, tools/, stages/, index/ and duplicates/.
"""
