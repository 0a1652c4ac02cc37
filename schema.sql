-- schema.sql - the single source of mg's database schema (SQLite).
--
-- The coordinator compiles this file in and applies it at start: each block that begins
-- with a line "-- migrate: N" runs once, in its own BEGIN IMMEDIATE transaction, when
-- PRAGMA user_version < N, and sets user_version = N. Blocks are forward-only: once a block
-- has landed on main, never edit it; add a new one. Pragmas that are per-connection (foreign_keys, WAL,
-- synchronous, busy_timeout) are set by coordinator/db.c, not here.
--
-- Audits are plain SQL over the views at the end (docs/audit.md has example queries).

-- migrate: 1

-- One submitted job file. idempotency_key is unique: submitting the same key again
-- returns this row; the same key with another canonical_sha256 is refused.
CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    idempotency_key   TEXT    NOT NULL UNIQUE,
    canonical_sha256  TEXT    NOT NULL,
    campaign          TEXT    NOT NULL,
    client            TEXT    NOT NULL DEFAULT '',
    owner             TEXT    NOT NULL DEFAULT '',
    priority          INTEGER NOT NULL DEFAULT 0,
    source_name       TEXT    NOT NULL,            -- file name as submitted
    source_text       TEXT    NOT NULL,            -- the file exactly as submitted
    canonical_json    TEXT    NOT NULL,            -- resolved job (defaults, seeds)
    output_dir        TEXT    NOT NULL,            -- relative to $MG_HOME/outputs
    formats           TEXT    NOT NULL,            -- comma-separated: flac,mp3,wav
    sample_rate       INTEGER NOT NULL,
    channels          INTEGER NOT NULL,
    mp3_bitrate_kbps  INTEGER NOT NULL,
    flac_bits         INTEGER NOT NULL,
    loudness_lufs     REAL,                        -- NULL: no normalisation
    state             TEXT    NOT NULL DEFAULT 'active'
                      CHECK (state IN ('active', 'done', 'failed', 'cancelled')),
    schedule_id       INTEGER REFERENCES schedules(id) ON DELETE SET NULL,
    created_ms        INTEGER NOT NULL,
    finished_ms       INTEGER
);

-- One cue of a job: the prompt and its musical overrides.
CREATE TABLE cues (
    id             INTEGER PRIMARY KEY,
    job_id         INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    name           TEXT    NOT NULL,
    prompt         TEXT    NOT NULL,
    prompt_sha256  TEXT    NOT NULL,
    duration_s     REAL    NOT NULL CHECK (duration_s > 0),
    variations     INTEGER NOT NULL CHECK (variations >= 1),
    tempo_bpm      REAL    NOT NULL DEFAULT 0,     -- 0: the composer decides
    musical_key    TEXT    NOT NULL DEFAULT '',    -- '': the composer decides
    instruments    TEXT    NOT NULL DEFAULT '',    -- comma-separated
    stems          TEXT    NOT NULL DEFAULT '',    -- comma-separated
    UNIQUE (job_id, name)
);

-- The emotion lexicon (common/emotion.c), refreshed by the coordinator at start.
CREATE TABLE emotion_tags (
    tag      TEXT PRIMARY KEY,
    valence  REAL NOT NULL CHECK (valence BETWEEN -1 AND 1),
    arousal  REAL NOT NULL CHECK (arousal BETWEEN -1 AND 1),
    family   TEXT NOT NULL
);

CREATE TABLE cue_emotions (
    cue_id    INTEGER NOT NULL REFERENCES cues(id) ON DELETE CASCADE,
    tag       TEXT    NOT NULL REFERENCES emotion_tags(tag),
    position  INTEGER NOT NULL,
    PRIMARY KEY (cue_id, tag)
);

-- One render = one cue x variation, with its explicit seed. Lifecycle and lease fields:
-- see the state machine at the top of coordinator/store.c.
CREATE TABLE renders (
    id               INTEGER PRIMARY KEY,
    job_id           INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    cue_id           INTEGER NOT NULL REFERENCES cues(id) ON DELETE CASCADE,
    variation        INTEGER NOT NULL CHECK (variation >= 0),
    seed             TEXT    NOT NULL,             -- unsigned 64-bit, decimal
    state            TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'leased', 'done', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    lease_token      TEXT,                         -- fencing token of the live lease
    lease_worker     TEXT,                         -- workers.name holding it
    lease_expires_ms INTEGER,
    last_worker      TEXT,                         -- worker of the last ended attempt
    last_error       TEXT,
    decision_json    TEXT,                         -- composer decision record
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    finished_ms      INTEGER,
    UNIQUE (job_id, cue_id, variation),
    CHECK ((state = 'leased') = (lease_token IS NOT NULL))
);
CREATE INDEX renders_queue ON renders (state, job_id);
CREATE INDEX renders_lease ON renders (state, lease_expires_ms);

-- Every lease ever granted. outcome 'running' while the lease is live.
CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    render_id    INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
    attempt_no   INTEGER NOT NULL,
    worker       TEXT    NOT NULL,
    lease_token  TEXT    NOT NULL UNIQUE,
    leased_ms    INTEGER NOT NULL,
    deadline_ms  INTEGER NOT NULL,
    ended_ms     INTEGER,
    outcome      TEXT    NOT NULL DEFAULT 'running'
                 CHECK (outcome IN ('running', 'done', 'failed', 'expired', 'lost',
                                    'cancelled', 'rejected')),
    error        TEXT,
    UNIQUE (render_id, attempt_no)
);
CREATE INDEX attempts_render ON attempts (render_id);

-- Workers that ever registered (READY). name = "host:pid:nonce", stable per process.
CREATE TABLE workers (
    name           TEXT PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    backend        TEXT    NOT NULL,
    device         TEXT    NOT NULL,
    capacity       INTEGER NOT NULL,
    models         TEXT    NOT NULL DEFAULT '',
    state          TEXT    NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'gone')),
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL
);

-- Consecutive failures of one worker on one job; blocked = 1 stops dispatching that
-- job's renders to that worker.
CREATE TABLE worker_job_failures (
    worker      TEXT    NOT NULL,
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    consecutive INTEGER NOT NULL DEFAULT 0,
    blocked     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (worker, job_id)
);

-- Models (or renderers) that produced outputs, identified by name, version and sha256.
CREATE TABLE models (
    id        INTEGER PRIMARY KEY,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    license   TEXT NOT NULL,
    UNIQUE (name, version, sha256)
);

-- The training-data sources behind a model: one row per source.
CREATE TABLE attribution (
    id        INTEGER PRIMARY KEY,
    model_id  INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    source    TEXT NOT NULL,
    author    TEXT NOT NULL DEFAULT '',
    license   TEXT NOT NULL DEFAULT '',
    url       TEXT NOT NULL DEFAULT '',
    UNIQUE (model_id, source)
);

-- Encoded files, written atomically under $MG_HOME/outputs before this row commits.
CREATE TABLE outputs (
    id           INTEGER PRIMARY KEY,
    render_id    INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
    format       TEXT    NOT NULL CHECK (format IN ('flac', 'mp3', 'wav')),
    path         TEXT    NOT NULL UNIQUE,          -- relative to $MG_HOME/outputs
    bytes        INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    duration_s   REAL    NOT NULL,
    sample_rate  INTEGER NOT NULL,
    channels     INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    UNIQUE (render_id, format)
);
CREATE INDEX outputs_sha ON outputs (sha256);

-- How each render was made. Records form a hash chain in seq order:
-- record_hash = sha256(prev_hash || "\n" || record_json), prev_hash of seq 1 = 64 zeros.
CREATE TABLE provenance (
    seq          INTEGER PRIMARY KEY,              -- 1, 2, 3, ... no gaps
    render_id    INTEGER NOT NULL UNIQUE REFERENCES renders(id),
    model_id     INTEGER NOT NULL REFERENCES models(id),
    worker       TEXT    NOT NULL,
    backend      TEXT    NOT NULL,
    device       TEXT    NOT NULL,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER NOT NULL,
    record_json  TEXT    NOT NULL,
    prev_hash    TEXT    NOT NULL,
    record_hash  TEXT    NOT NULL UNIQUE,
    created_ms   INTEGER NOT NULL
);

-- Recurring jobs. source_text is a snapshot of the job file taken at `schedule add`.
CREATE TABLE schedules (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    cron         TEXT    NOT NULL,                 -- 5 fields, UTC
    source_name  TEXT    NOT NULL,
    source_text  TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused')),
    created_ms   INTEGER NOT NULL,
    last_due_ms  INTEGER NOT NULL                  -- the latest due time already handled
);

-- One row per materialised due time: the primary key makes each run happen once.
CREATE TABLE schedule_runs (
    schedule_id  INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    due_ms       INTEGER NOT NULL,
    job_id       INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('submitted', 'invalid')),
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, due_ms)
);

-- What happened, in order: the log that `mgctl watch` follows.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    job_id     INTEGER,
    render_id  INTEGER,
    worker     TEXT,
    message    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_job ON events (job_id, id);

-- One row per finished output: everything an auditor asks about a file. Everything about
-- how the file was made is read from the hash-chained record_json (json_extract), not from
-- columns that the chain does not cover; output_sha256 is cross-checked against the record
-- by `mgctl audit verify`.
CREATE VIEW audit_renders AS
SELECT json_extract(p.record_json, '$.render_id')          AS render_id,
       json_extract(p.record_json, '$.job_id')             AS job_id,
       json_extract(p.record_json, '$.campaign')           AS campaign,
       json_extract(p.record_json, '$.client')             AS client,
       json_extract(p.record_json, '$.cue')                AS cue,
       json_extract(p.record_json, '$.variation')          AS variation,
       json_extract(p.record_json, '$.prompt')             AS prompt,
       json_extract(p.record_json, '$.emotions')           AS emotion_tags,
       json_extract(p.record_json, '$.seed')               AS seed,
       json_extract(p.record_json, '$.model.name')         AS model_name,
       json_extract(p.record_json, '$.model.version')      AS model_version,
       json_extract(p.record_json, '$.model.sha256')       AS model_sha256,
       json_extract(p.record_json, '$.model.license')      AS model_license,
       w.host                                               AS worker_host,
       json_extract(p.record_json, '$.worker')             AS worker,
       json_extract(p.record_json, '$.backend')            AS backend,
       json_extract(p.record_json, '$.device')             AS device,
       json_extract(p.record_json, '$.started_ms')         AS started_ms,
       json_extract(p.record_json, '$.finished_ms')        AS finished_ms,
       o.path              AS output_path,
       o.format            AS format,
       o.sha256            AS output_sha256,
       o.bytes             AS output_bytes,
       o.duration_s        AS duration_s,
       p.seq               AS provenance_seq,
       p.record_hash       AS provenance_hash
FROM outputs o
JOIN provenance p   ON p.render_id = o.render_id
LEFT JOIN workers w ON w.name = json_extract(p.record_json, '$.worker');

-- Per job: progress counts.
CREATE VIEW job_progress AS
SELECT j.id AS job_id, j.campaign, j.client, j.state, j.priority, j.created_ms, j.finished_ms,
       count(r.id)                                     AS total,
       coalesce(sum(r.state = 'queued'), 0)            AS queued,
       coalesce(sum(r.state = 'leased'), 0)            AS leased,
       coalesce(sum(r.state = 'done'), 0)              AS done,
       coalesce(sum(r.state = 'failed'), 0)            AS failed,
       coalesce(sum(r.state = 'cancelled'), 0)         AS cancelled
FROM jobs j LEFT JOIN renders r ON r.job_id = j.id
GROUP BY j.id;

-- Every attempt that did not succeed (expired, lost, failed, rejected, cancelled), with
-- its error; the render itself may have succeeded on a later attempt (see state).
CREATE VIEW audit_failures AS
SELECT r.id AS render_id, r.job_id, c.name AS cue, r.variation + 1 AS variation, r.state,
       r.attempts, r.last_error, a.attempt_no, a.worker, a.outcome, a.error,
       a.leased_ms, a.ended_ms
FROM renders r JOIN cues c ON c.id = r.cue_id
JOIN attempts a ON a.render_id = r.id
WHERE a.outcome NOT IN ('running', 'done');

-- migrate: 2

-- What a render delivers: besides the mix, one file per stem and format and the score as
-- MIDI (output.deliver in the job file); a cue can be a seamless loop. outputs gains the
-- file's kind and part (the stem's name), so its uniqueness becomes (render, kind, part,
-- format); SQLite cannot change a table's constraints in place, so the table is rebuilt
-- (the view that reads it is dropped first and created again below).
ALTER TABLE jobs ADD COLUMN deliver TEXT NOT NULL DEFAULT 'mix';  -- comma-separated: mix,stems,midi
ALTER TABLE cues ADD COLUMN loop INTEGER NOT NULL DEFAULT 0 CHECK (loop IN (0, 1));

DROP VIEW audit_renders;
CREATE TABLE outputs_v2 (
    id           INTEGER PRIMARY KEY,
    render_id    INTEGER NOT NULL REFERENCES renders(id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL DEFAULT 'mix' CHECK (kind IN ('mix', 'stem', 'midi')),
    part         TEXT    NOT NULL DEFAULT '',      -- the stem's name; '' for mix and midi
    format       TEXT    NOT NULL CHECK (format IN ('flac', 'mp3', 'wav', 'mid')),
    path         TEXT    NOT NULL UNIQUE,          -- relative to $MG_HOME/outputs
    bytes        INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    duration_s   REAL    NOT NULL,
    sample_rate  INTEGER NOT NULL,
    channels     INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    UNIQUE (render_id, kind, part, format),
    CHECK ((kind = 'stem') = (part <> '')),
    CHECK ((kind = 'midi') = (format = 'mid'))
);
INSERT INTO outputs_v2 (id, render_id, kind, part, format, path, bytes, sha256, duration_s, sample_rate,
                        channels, created_ms)
SELECT id, render_id, 'mix', '', format, path, bytes, sha256, duration_s, sample_rate, channels, created_ms
FROM outputs;
DROP TABLE outputs;
ALTER TABLE outputs_v2 RENAME TO outputs;
CREATE INDEX outputs_sha ON outputs (sha256);
CREATE INDEX outputs_render ON outputs (render_id);

-- One row per delivered file (mix, stem or MIDI): everything an auditor asks about a file.
-- Everything about how the file was made is read from the hash-chained record_json
-- (json_extract), not from columns that the chain does not cover; output_sha256 is
-- cross-checked against the record by `mgctl audit verify`.
CREATE VIEW audit_renders AS
SELECT json_extract(p.record_json, '$.render_id')          AS render_id,
       json_extract(p.record_json, '$.job_id')             AS job_id,
       json_extract(p.record_json, '$.campaign')           AS campaign,
       json_extract(p.record_json, '$.client')             AS client,
       json_extract(p.record_json, '$.cue')                AS cue,
       json_extract(p.record_json, '$.variation')          AS variation,
       json_extract(p.record_json, '$.prompt')             AS prompt,
       json_extract(p.record_json, '$.emotions')           AS emotion_tags,
       json_extract(p.record_json, '$.seed')               AS seed,
       json_extract(p.record_json, '$.model.name')         AS model_name,
       json_extract(p.record_json, '$.model.version')      AS model_version,
       json_extract(p.record_json, '$.model.sha256')       AS model_sha256,
       json_extract(p.record_json, '$.model.license')      AS model_license,
       w.host                                               AS worker_host,
       json_extract(p.record_json, '$.worker')             AS worker,
       json_extract(p.record_json, '$.backend')            AS backend,
       json_extract(p.record_json, '$.device')             AS device,
       json_extract(p.record_json, '$.started_ms')         AS started_ms,
       json_extract(p.record_json, '$.finished_ms')        AS finished_ms,
       o.path              AS output_path,
       o.format            AS format,
       o.sha256            AS output_sha256,
       o.bytes             AS output_bytes,
       o.duration_s        AS duration_s,
       p.seq               AS provenance_seq,
       p.record_hash       AS provenance_hash,
       o.kind              AS kind,
       o.part              AS part
FROM outputs o
JOIN provenance p   ON p.render_id = o.render_id
LEFT JOIN workers w ON w.name = json_extract(p.record_json, '$.worker');

-- migrate: 3

-- Provenance records are signed with the coordinator's Ed25519 key ($MG_HOME/keys/, never in
-- this database; coordinator/sign.h): signature is the hex signature of (seq, prev_hash,
-- record_hash), signer_key_id the first 8 bytes of sha256(public key) in hex. Both are NULL
-- for the records written before this migration, which `mgctl audit verify` reports as
-- "unsigned (before signing)"; an unsigned record after a signed one is a broken chain.
ALTER TABLE provenance ADD COLUMN signature TEXT;
ALTER TABLE provenance ADD COLUMN signer_key_id TEXT;
