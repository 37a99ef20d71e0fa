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
--
-- Every table's schema is here, and this module requires nothing: the
-- resource modules (prisn.store.jobs, ...) own the SQL that reads and writes
-- their tables, not the tables, so opening a database loads no resource
-- module and none of them is part of a require cycle with prisn.store. The
-- long scripts stand before the list under their resource's name, which
-- specs use to build a database of one resource (migrations.events, ...).

-- 3: the audit trail (prisn.store.events). WITHOUT ROWID: the table is
-- stored in id order, so inserts append, time ranges and pruning are ranges
-- of the primary key, and no second copy of the id is kept.
local EVENTS = [[
CREATE TABLE events (
  id        TEXT PRIMARY KEY,    -- prisn.ids id: ORDER BY id is recording order
  time      INTEGER NOT NULL,    -- ms since the epoch, when it happened
  namespace TEXT,                -- NULL: cluster-wide (tokens, the server)
  actor     TEXT NOT NULL,       -- "token:<name>" | "system"
  action    TEXT NOT NULL,       -- "job.created", "secret.deleted", ...
  object    TEXT,                -- "job/<id>", "secret/<name>", ...; NULL: none
  message   TEXT                 -- for people; names only, never values
) WITHOUT ROWID;
CREATE INDEX events_namespace_id ON events (namespace, id);
CREATE INDEX events_object_id ON events (object, id);
]]

-- 4: secrets, sealed under the master key (prisn.store.secrets).
local SECRETS = [[
CREATE TABLE secrets (
  namespace  TEXT NOT NULL,
  name       TEXT NOT NULL,
  key_id     TEXT NOT NULL,      -- id of the master key that sealed data (8 hex digits)
  data       BLOB NOT NULL,      -- nonce | XChaCha20-Poly1305(JSON {KEY: value}) | tag
  keys       TEXT NOT NULL,      -- JSON array of the key NAMES, sorted; never values
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
);
CREATE TABLE secret_keyring (
  id         INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  key_id     TEXT NOT NULL,      -- the master key every row of secrets is sealed under
  updated_at INTEGER NOT NULL
);
]]

-- 7: cron jobs, and the link from a job to the cron job it is a run of
-- (prisn.store.cronjobs).
local CRONJOBS = [[
CREATE TABLE cronjobs (
  namespace      TEXT NOT NULL,
  name           TEXT NOT NULL,
  expression     TEXT NOT NULL,             -- normalized standard expression
  timezone       TEXT,                      -- IANA name; NULL: the server's local zone
  spec           TEXT NOT NULL,             -- JSON: the job spec each run submits
  concurrency    TEXT NOT NULL DEFAULT 'forbid',  -- allow | forbid | replace
  catch_up       INTEGER NOT NULL DEFAULT 0,
  keep_succeeded INTEGER NOT NULL DEFAULT 10,
  keep_failed    INTEGER NOT NULL DEFAULT 10,
  suspended      INTEGER NOT NULL DEFAULT 0,
  next_fire      INTEGER,                   -- ms since the epoch; NULL while suspended
  last_fire      INTEGER,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
);
CREATE INDEX cronjobs_next_fire ON cronjobs (next_fire) WHERE suspended = 0;
ALTER TABLE jobs ADD COLUMN cron TEXT;     -- the cron job a run belongs to
CREATE INDEX jobs_cron ON jobs (namespace, cron, id) WHERE cron IS NOT NULL;
]]

-- 8: deployments, their revisions and instances (prisn.store.deployments).
local DEPLOYMENTS = [[
CREATE TABLE deployments (
  namespace   TEXT NOT NULL,
  name        TEXT NOT NULL,
  revision    INTEGER NOT NULL,          -- the revision instances should run
  replicas    INTEGER NOT NULL,          -- desired instances
  port        INTEGER,                   -- the load-balanced public port; NULL: none
  host        TEXT,                      -- the address the port listens on
  strategy    TEXT NOT NULL DEFAULT 'round-robin',  -- or least-connections
  autoscale   TEXT,                      -- JSON { min, max, target_cpu } or NULL
  next_number INTEGER NOT NULL DEFAULT 1,  -- the number of the next instance
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
);
CREATE UNIQUE INDEX deployments_port ON deployments (port) WHERE port IS NOT NULL;
CREATE TABLE revisions (
  namespace  TEXT NOT NULL,
  name       TEXT NOT NULL,
  revision   INTEGER NOT NULL,
  spec       TEXT NOT NULL,             -- JSON: the instance template
  state      TEXT NOT NULL,             -- rolling_out | active | superseded | rolled_back | failed
  message    TEXT,                      -- why it was rolled back
  created_at INTEGER NOT NULL,
  created_by TEXT,
  PRIMARY KEY (namespace, name, revision),
  FOREIGN KEY (namespace, name) REFERENCES deployments (namespace, name) ON DELETE CASCADE
);
CREATE TABLE instances (
  namespace  TEXT NOT NULL,
  deployment TEXT NOT NULL,
  number     INTEGER NOT NULL,
  revision   INTEGER NOT NULL,
  port       INTEGER,                   -- the internal port in $PORT
  pid        INTEGER,                   -- while a process runs
  started_at INTEGER,                   -- ms: when that process started
  state      TEXT NOT NULL,
  restarts   INTEGER NOT NULL DEFAULT 0,
  last_exit  TEXT,                      -- JSON { at, code, signal, reason }
  created_at INTEGER NOT NULL,
  PRIMARY KEY (namespace, deployment, number),
  FOREIGN KEY (namespace, deployment) REFERENCES deployments (namespace, name) ON DELETE CASCADE
);
]]

-- 9: a deployment's ingress route: the host name clients send and a path
-- prefix, and where its TLS certificate comes from. A (hostname, path) pair routes to one deployment (the index), and
-- a host name belongs to one namespace (the triggers): the namespace that
-- has it decides its paths, and no other can take requests meant for it.
-- Checked in the statement that writes the row, so two requests racing for
-- one name cannot both have it.
local INGRESS = [[
ALTER TABLE deployments ADD COLUMN hostname TEXT;  -- lower case; NULL: not on the ingress
ALTER TABLE deployments ADD COLUMN path TEXT;      -- prefix, "/" at least, set with hostname
ALTER TABLE deployments ADD COLUMN tls_cert TEXT;  -- PEM files on the server for hostname's TLS, or
ALTER TABLE deployments ADD COLUMN tls_key TEXT;
ALTER TABLE deployments ADD COLUMN tls_secret TEXT;  -- a secret of the namespace (TLS_CERT, TLS_KEY); none:
                                                   -- a self-signed certificate
CREATE UNIQUE INDEX deployments_route ON deployments (hostname, path) WHERE hostname IS NOT NULL;
CREATE TRIGGER deployments_hostname_insert BEFORE INSERT ON deployments
WHEN NEW.hostname IS NOT NULL AND EXISTS (SELECT 1 FROM deployments
  WHERE hostname = NEW.hostname AND namespace <> NEW.namespace)
BEGIN SELECT RAISE(ABORT, 'hostname of another namespace'); END;
CREATE TRIGGER deployments_hostname_update BEFORE UPDATE OF hostname ON deployments
WHEN NEW.hostname IS NOT NULL AND EXISTS (SELECT 1 FROM deployments
  WHERE hostname = NEW.hostname AND namespace <> NEW.namespace)
BEGIN SELECT RAISE(ABORT, 'hostname of another namespace'); END;
]]

local M = {
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
  EVENTS,
  -- 4: secrets, sealed under the master key (prisn.store.secrets owns the SQL).
  SECRETS,
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
  CRONJOBS,
  -- 8: deployments, their revisions and instances (prisn.store.deployments
  -- owns the SQL).
  DEPLOYMENTS,
  -- 9: a deployment's ingress route (prisn.store.deployments).
  INGRESS,
}

-- By name as well, for specs that build a database of one resource.
M.events, M.secrets, M.cronjobs, M.deployments, M.ingress = EVENTS, SECRETS, CRONJOBS, DEPLOYMENTS, INGRESS

return M
