-- The job runners alive and what each accepts (SQLite's 0024): a row per runner and
-- requirement it meets (jobs.model_requirement), alive until ``expires`` and renewed while
-- its runner polls or runs a job; a runner that stops deletes its rows. A claim takes a job
-- past its deadline whose requirement the claiming process does not meet (to finish it as
-- skipped) only while no live runner meets it: a replica on the wrong model version used to
-- skip a late rebind that a live replica at the right version would have run.
CREATE TABLE job_runners (
    requires TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (requires, owner)
);
