-- tfq coordinator store, schema version 1.  The coordinator is the only
-- writer.  Times are milliseconds since the Unix epoch (*_ms).
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value
);

CREATE TABLE grids (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    spec TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    grid_id INTEGER REFERENCES grids(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('train', 'sleep')),
    spec TEXT NOT NULL,
    identity TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'ready', 'running',
        'succeeded', 'failed', 'blocked', 'cancelled')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    last_error TEXT,
    split TEXT,
    similarity TEXT,
    target TEXT,
    n INTEGER,
    variant TEXT,
    finetune INTEGER,
    seed INTEGER,
    result TEXT,
    created_ms INTEGER,
    updated_ms INTEGER,
    UNIQUE (grid_id, name)
);
-- The lease query: ready jobs, highest priority first, then lowest id (the
-- rowid is the index's implicit last column).
CREATE INDEX jobs_state_priority ON jobs (state, priority DESC);
-- Counts per state of one grid.
CREATE INDEX jobs_grid_state ON jobs (grid_id, state);
CREATE INDEX jobs_identity ON jobs (identity);

CREATE TABLE deps (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    depends_on INTEGER NOT NULL REFERENCES jobs(id),
    PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
-- Walking from a job to its dependents (retry, blocking).
CREATE INDEX deps_depends_on ON deps (depends_on, job_id);

CREATE TABLE attempts (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    worker TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed',
        'lost', 'released', 'cancelled')),
    started_ms INTEGER,
    heartbeat_ms INTEGER,
    finished_ms INTEGER,
    error TEXT,
    PRIMARY KEY (job_id, attempt)
);
-- Expiry scans the running attempts by heartbeat.
CREATE INDEX attempts_state_heartbeat ON attempts (state, heartbeat_ms);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT,
    pid INTEGER,
    threads INTEGER,
    first_seen_ms INTEGER,
    last_seen_ms INTEGER,
    state TEXT
);

CREATE TABLE metrics (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    loss REAL,
    test_acc REAL,
    images_per_s REAL,
    PRIMARY KEY (job_id, attempt, epoch)
);

CREATE TABLE checkpoints (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    attempt INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER,
    created_ms INTEGER,
    PRIMARY KEY (job_id, attempt, epoch)
);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER,
    job_id INTEGER,
    attempt INTEGER,
    worker TEXT,
    kind TEXT,
    detail TEXT
);
CREATE INDEX events_job ON events (job_id);
