"""ocrpipe: a folder-drop OCR pipeline that turns scans into searchable PDF/A files.

The package is laid out in wings, each owning one concern. A wing imports only from the wings listed
before it (tests/test_import_rules.py keeps this true):

Wings, lowest first: core, folders, tools, stages, index, duplicates, retention, engine, hooks, cluster, web, ops, root

- core: the top-level modules every wing uses: config (with clustertls, its checks of the cluster
  settings), errors, model, logs, locate (where tools live), proctree and ownprocs (killing a process
  tree, and only one of ocrpipe's own);
- folders/: the data folder on disk (intake, publish, state.json, heartbeats, names, the hooks' outbox);
- tools/: one module per external tool, and the one subprocess entry point;
- stages/: the work a pool worker does (PREP, OCR, batches, splits);
- index/: the SQLite job index, history and metrics;
- duplicates/: held duplicates, their reports and commands;
- retention/: old archived originals, error/ folders and index rows removed by age, planned then applied;
- engine/: the scheduler, its steps and its pools;
- hooks/: the outbox's events delivered to the command hook and the webhook, by a loop of their own;
- cluster/: the stages on a Dask cluster and `ocrpipe worker`;
- web/: the HTTP API and the status page;
- ops/: doctor, schedule, status;
- root: the composition root, `cli` and `runner` (`ocrpipe run`'s wiring), and `__main__`.
"""

__version__ = "0.1.0"
