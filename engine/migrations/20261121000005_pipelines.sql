-- Slipway: pipeline runs are driven by one process at a time.
--
-- A driver claims a pending or running run by setting lease_owner and
-- lease_expires_at (UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)),
-- renews the lease while it works, and writes step states only while it still
-- holds the lease. A run whose driver stopped is picked up again once its
-- lease has expired; every step resumes from what the run recorded.

ALTER TABLE pipeline_runs
    ADD COLUMN lease_owner      text,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN error_message    text,
    ADD CONSTRAINT pipeline_runs_lease_check
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL));

COMMENT ON COLUMN pipeline_runs.lease_owner IS
    'The driver (process) executing this run; NULL when nobody is.';
COMMENT ON COLUMN pipeline_runs.error_message IS
    'Why the run failed: the failed step and its error.';
