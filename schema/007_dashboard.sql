-- tfq coordinator store, schema version 7: the dashboard's jobs table pages
-- a grid of 100,000 jobs sorted by any of its columns.  Each index walks
-- one grid's jobs in the order of a sort key, ties by id (the rowid, every
-- index's implicit last column), so that a page is an index range and a
-- skip, not a sort of the grid: jobs_grid for the default order (by id),
-- UNIQUE (grid_id, name) and jobs_grid_state serve name and state.
CREATE INDEX jobs_grid ON jobs (grid_id);
CREATE INDEX jobs_grid_split ON jobs (grid_id, split);
CREATE INDEX jobs_grid_variant ON jobs (grid_id, variant);
CREATE INDEX jobs_grid_n ON jobs (grid_id, n);
CREATE INDEX jobs_grid_attempts ON jobs (grid_id, attempts);
CREATE INDEX jobs_grid_updated ON jobs (grid_id, updated_ms);
