"""Worker-side stages: top-level functions that pickle into spawned pool workers."""
