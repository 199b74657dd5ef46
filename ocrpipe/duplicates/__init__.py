"""Held duplicates: the move into hold/duplicates/, what a person reads about them (status.json and
the report), and the `duplicates`/`decide` commands. Applying a decision is a scheduler step (engine/).
Imports the top-level modules and folders/.
"""
