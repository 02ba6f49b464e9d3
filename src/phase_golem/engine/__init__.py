"""Effects: backlog operations, the scheduler loop, run execution, recovery, intake."""
