-- A filtered page of runs plus the counts per status of every run that
-- passes the filters (webui.runindex). The smallest index is walked
-- newest first; every other index is probed with ZSCORE.
-- KEYS: one or more index zsets (wfid -> launched_at)
-- ARGV: run hash key prefix, wanted status ("" = any), offset, limit,
-- wanted outcome ("" = any; the run hash's outcome field, engine.core.outcome)
-- Returns {counts = {status, n, status, n, ...}, rows = {wfid, name, status, at, ...}}
local runkey, want = ARGV[1], ARGV[2]
local skip, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local want_outcome = ARGV[5] or ''
local walk, best = 1, redis.call('ZCARD', KEYS[1])
for i = 2, #KEYS do
  local n = redis.call('ZCARD', KEYS[i])
  if n < best then walk, best = i, n end
end
local counts, order, rows = {}, {}, {}
local start, chunk = 0, 512
while true do
  local page = redis.call('ZREVRANGE', KEYS[walk], start, start + chunk - 1)
  for _, id in ipairs(page) do
    local ok = true
    for i = 1, #KEYS do
      if i ~= walk and not redis.call('ZSCORE', KEYS[i], id) then ok = false break end
    end
    if ok then
      local row = redis.call('HMGET', runkey .. id, 'status', 'name', 'at', 'outcome')
      local st = row[1]
      if st and (want_outcome == '' or row[4] == want_outcome) then
        if not counts[st] then counts[st] = 0 order[#order + 1] = st end
        counts[st] = counts[st] + 1
        if want == '' or want == st then
          if skip > 0 then
            skip = skip - 1
          elseif #rows < limit * 4 then
            rows[#rows + 1] = id
            rows[#rows + 1] = row[2]
            rows[#rows + 1] = st
            rows[#rows + 1] = row[3]
          end
        end
      end
    end
  end
  if #page < chunk then break end
  start = start + chunk
end
local flat = {}
for _, st in ipairs(order) do
  flat[#flat + 1] = st
  flat[#flat + 1] = counts[st]
end
return {flat, rows}
