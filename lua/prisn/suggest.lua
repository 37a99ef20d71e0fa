-- prisn.suggest: "Did you mean ...?" for mistyped names: commands, flags, runners.
--
-- Optimal string alignment distance (Levenshtein plus adjacent
-- transpositions), because the commonest typo, "verison", is a swap.
local M = {}

--- Edit distance between a and b, counting an adjacent swap as one edit.
function M.distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do
    d[i] = { [0] = i }
  end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local best = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        best = math.min(best, d[i - 2][j - 2] + 1)
      end
      d[i][j] = best
    end
  end
  return d[la][lb]
end

--- The candidates closest to `word`, best first: those within a distance
-- that grows with the word's length, and those that `word` is a prefix of.
function M.closest(word, candidates)
  local limit = math.max(1, math.min(3, #word // 3 + 1))
  local scored = {}
  for _, c in ipairs(candidates) do
    local dist = M.distance(word, c)
    if dist <= limit or (#word >= 2 and c:sub(1, #word) == word) then
      scored[#scored + 1] = { name = c, dist = dist }
    end
  end
  table.sort(scored, function(x, y)
    if x.dist ~= y.dist then return x.dist < y.dist end
    return x.name < y.name
  end)
  local names = {}
  for i, s in ipairs(scored) do names[i] = s.name end
  return names
end

--- "Did you mean 'version'?" or nil when nothing is close.
function M.did_you_mean(word, candidates, prefix)
  local close = M.closest(word, candidates)
  if #close == 0 then return nil end
  prefix = prefix or ""
  if #close == 1 then return string.format("Did you mean '%s%s'?", prefix, close[1]) end
  local quoted = {}
  for i = 1, math.min(3, #close) do quoted[i] = "'" .. prefix .. close[i] .. "'" end
  return "Did you mean one of " .. table.concat(quoted, ", ") .. "?"
end

return M
