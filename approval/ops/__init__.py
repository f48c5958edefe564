"""The domain's operations: each checks its rules and flushes; the request or the job commits."""
