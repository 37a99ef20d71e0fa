-- prisn.store.migrations: the state database's schema, as the ordered list of
-- SQL scripts that build it. Entry i takes the schema from version i-1 to i;
-- PRAGMA user_version holds the version applied last (prisn.store applies the
-- missing ones, in order, inside one transaction).
--
-- Rules: never edit or reorder an entry that has shipped; add a new one.
-- SQLite cannot change a CHECK constraint or a column type without rebuilding
-- the table, so enumerations (job states, reasons) are checked in Lua, not
-- here, and a later issue can add a state or a reason without a migration.
-- Times are integers, milliseconds since the Unix epoch (UTC); lists are JSON
-- arrays of strings; booleans are 0/1.
return {
  -- 1: jobs. One row per run of a script: `prisn run`, later the queue and
  -- cron. `id` is a prisn.ids id, so ORDER BY id is creation order. A link to
  -- a cronjob or deployment is added by a later migration as a nullable
  -- column (ALTER TABLE ... ADD COLUMN cron_id TEXT REFERENCES ...).
  [[
CREATE TABLE jobs (
  id          TEXT PRIMARY KEY,
  namespace   TEXT NOT NULL DEFAULT 'default',
  script      TEXT NOT NULL,               -- absolute path
  runner      TEXT NOT NULL,               -- runner name: python3, node, bash, ...
  args        TEXT NOT NULL DEFAULT '[]',  -- JSON array of strings
  env_keys    TEXT NOT NULL DEFAULT '[]',  -- JSON array of variable NAMES, never values
  env_key     TEXT,                        -- dependency-environment cache key
  deps_source TEXT,                        -- where the dependencies were read from
  cwd         TEXT,
  state       TEXT NOT NULL,               -- pending | running | succeeded | failed
  reason      TEXT,                        -- exited | timeout | killed | failed_to_start | interrupted
  exit_code   INTEGER,
  signal      TEXT,                        -- e.g. TERM
  pid         INTEGER,
  created_at  INTEGER NOT NULL,
  started_at  INTEGER,
  finished_at INTEGER,
  log_path    TEXT,
  message     TEXT,                        -- e.g. "python3: not found"
  detached    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_namespace_id ON jobs (namespace, id);
CREATE INDEX jobs_state_id ON jobs (state, id);
]],
  -- 2: API tokens (prisn.store.tokens). Only a keyed hash of the secret part
  -- is kept; namespaces is a JSON array, ["*"] meaning every namespace.
  [[
CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,            -- prisn.ids id, also inside the token
  name         TEXT NOT NULL,
  role         TEXT NOT NULL,               -- view | edit | admin
  namespaces   TEXT NOT NULL,               -- JSON array; ["*"] = every namespace
  hash         BLOB NOT NULL,               -- BLAKE2b(secret, key = token.key)
  created_at   INTEGER NOT NULL,
  created_by   TEXT,                        -- actor that created it
  expires_at   INTEGER,
  revoked_at   INTEGER,
  last_used_at INTEGER
);
]],
  -- 3: the audit trail (prisn.store.events owns the SQL).
  require("prisn.store.events").MIGRATION,
  -- 4: secrets, sealed under the master key (prisn.store.secrets owns the SQL).
  require("prisn.store.secrets").MIGRATION,
  -- 5: what the server needs to run a job it accepted: the launch spec (script
  -- path, args, environment values from -e, secret NAMES, limits) so a queued
  -- job survives a restart. Secret values are never stored here; they are read
  -- from the secrets table when the job starts.
  [[
CREATE TABLE job_specs (
  job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
  spec   TEXT NOT NULL              -- JSON
);
]],
  -- 6: a server job runs in its own runner process (`prisn __job-run ID`),
  -- which outlives a crashed server; its pid is kept so a restarted server can
  -- find and re-adopt it.
  [[
ALTER TABLE job_specs ADD COLUMN runner_pid INTEGER;
]],
  -- 7: cron jobs, and the link from a job to the cron job it is a run of
  -- (prisn.store.cronjobs owns the SQL).
  require("prisn.store.cronjobs").MIGRATION,
  -- 8: deployments, their revisions and instances (prisn.store.deployments
  -- owns the SQL).
  require("prisn.store.deployments").MIGRATION,
}
