-- tfq coordinator store, schema version 2: a transfer job names the job
-- whose final checkpoint it copies layers from (it also depends on it).
ALTER TABLE jobs ADD COLUMN init_from INTEGER REFERENCES jobs (id);
