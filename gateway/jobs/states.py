"""The gateway's job states (kept apart from the job model so that `gw job list` reads them
without building any class)."""

# A job is SUBMITTING from its record's creation until sbatch answers (or reconciliation
# adopts it), then PENDING/RUNNING as Slurm says; UNKNOWN while Slurm cannot be asked.
ACTIVE = ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN")
# Finished states are final: no later poll, ingest or reconciliation changes them.
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")
STATES = ACTIVE + TERMINAL
