-- tfq coordinator store, schema version 5: finding finished work by
-- identity is one index probe, however many jobs share the identity.
CREATE INDEX jobs_identity_state ON jobs (identity, state);
DROP INDEX jobs_identity;
