"""Hooks: the events of the outbox (``hooks/pending/``) delivered to a command and a webhook, by a loop of
their own beside the scheduler's; retried with growing pauses, then set aside in ``hooks/failed/``; and
``ocrpipe hooks``. A hook only ever reads: it never changes a job's state nor moves a file of a job."""
