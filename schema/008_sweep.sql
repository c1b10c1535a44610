-- tfq coordinator store, schema version 8: a job of a swept grid (a grid
-- file whose train: keys give lists) has the values of its setting
-- combination as a grid coordinate, "lr=0.01/init=caffe"; NULL for a job
-- of a grid without sweeps and for a plain job file's.
ALTER TABLE jobs ADD COLUMN sweep TEXT;
