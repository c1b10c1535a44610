-- tfq coordinator store, schema version 3: each epoch's report carries the
-- worker's estimate of the time left, for `tfq status`.
ALTER TABLE metrics ADD COLUMN eta_s REAL;
