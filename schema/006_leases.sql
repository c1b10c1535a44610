-- tfq coordinator store, schema version 6: a lease belongs to its holder,
-- and a lost lease is not a failure.
-- attempts.holder: the lease token the coordinator gave with the lease
-- (its first 128 bits, and under CURVE the worker key's fingerprint); only
-- a message carrying that token may heartbeat, report, upload for, finish or
-- release the attempt.  attempts.resumed_from: the checkpoint the attempt
-- was told to resume from.
ALTER TABLE attempts ADD COLUMN holder TEXT;
ALTER TABLE attempts ADD COLUMN resumed_from TEXT;
-- jobs.lost: attempts lost (worker silent, killed, cut off), counted apart
-- from failures; a job is failed once lost reaches max_lost.
-- jobs.failures: attempts that ended with the job's own error.
ALTER TABLE jobs ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_lost INTEGER NOT NULL DEFAULT 20;
ALTER TABLE jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
-- checkpoints.bad: why the checkpoint is no longer offered to resume from
-- (an attempt that resumed from it failed, or submit --force); NULL: good.
ALTER TABLE checkpoints ADD COLUMN bad TEXT;
-- The lease query: among ready jobs of the same priority the ones lost
-- least go first, so that leases lost again and again (a worker that dies of
-- a job, fake workers) spread over the queue, not onto the same job.
DROP INDEX jobs_state_priority;
CREATE INDEX jobs_state_priority ON jobs (state, priority DESC, lost);
