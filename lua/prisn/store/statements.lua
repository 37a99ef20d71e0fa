-- prisn.store.statements: db:first and db:run through statements prepared
-- once per database handle, for the few statements the server runs for
-- every job (record, start, end, spec).
--
-- db:first and db:run prepare their SQL on every call: SQLite's parser and
-- planner were about 40 µs of the ~60 µs a job's row cost the server to read
-- or update, several times per job. A statement kept here is reset after
-- each use, so it never holds a read transaction open (which would keep a
-- WAL checkpoint from finishing). Closing the handle finalizes its
-- statements (prisn.core.store); the cache forgets a handle once it is
-- garbage. A handle without prepare (a fake in a spec) gets the plain calls.
local M = {}

-- db -> { sql -> stmt }; weak keys, so a closed and dropped handle goes.
local cache = setmetatable({}, { __mode = "k" })

-- The statement for `sql` on `db`, prepared on first use; nil, message,
-- code when it cannot be prepared.
local function prepared(db, sql)
  local stmts = cache[db]
  if not stmts then
    stmts = {}
    cache[db] = stmts
  end
  local stmt = stmts[sql]
  if stmt then return stmt end
  local made, message, code = db:prepare(sql)
  if not made then return nil, message, code end
  stmts[sql] = made
  return made
end

--- As db:first(sql, ...): the first row, nil when there is none, or nil,
-- message, code.
function M.first(db, sql, ...)
  if not db.prepare then return db:first(sql, ...) end
  local stmt, message, code = prepared(db, sql)
  if not stmt then return nil, message, code end
  local bound, berr, bcode = stmt:bind(...)
  if not bound then return nil, berr, bcode end
  local row, serr, scode = stmt:step()
  stmt:reset()
  if row == nil then return nil, serr, scode end
  return row or nil
end

--- As db:run(sql, ...): the number of rows changed, or nil, message, code.
function M.run(db, sql, ...)
  if not db.prepare then return db:run(sql, ...) end
  local stmt, message, code = prepared(db, sql)
  if not stmt then return nil, message, code end
  local bound, berr, bcode = stmt:bind(...)
  if not bound then return nil, berr, bcode end
  while true do
    local row, serr, scode = stmt:step()
    if row == nil then
      stmt:reset()
      return nil, serr, scode
    end
    if row == false then break end
  end
  stmt:reset()
  return db:changes()
end

return M
