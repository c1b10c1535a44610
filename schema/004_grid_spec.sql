-- tfq coordinator store, schema version 4: grids written as grid specs.
-- A grid keeps the metric its report uses; a job whose identity matched a
-- job that had already succeeded is stored as succeeded and names that job
-- (its result and final checkpoint are that job's).
ALTER TABLE grids ADD COLUMN metric TEXT;
ALTER TABLE jobs ADD COLUMN reused_from INTEGER REFERENCES jobs (id);
