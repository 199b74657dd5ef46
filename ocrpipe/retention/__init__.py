"""Retention: old archived originals and error/ folders removed (or moved to a trash folder) and old
index rows thinned, by when each job finished; planned first, then applied item by item, so a crash
in the middle is finished by the next run and removes nothing beyond the plan."""
