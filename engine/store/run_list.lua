-- A page of run summaries, newest launch first, from one index or from the
-- intersection of two (the smaller one is walked, the other probed).
-- KEYS[1] index, KEYS[2] optional second index
-- ARGV: run hash key prefix, offset, limit
-- Returns a flat array: wfid, name, status, at, wfid, name, ...
local runkey, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids
if #KEYS == 1 then
  ids = redis.call('ZREVRANGE', KEYS[1], offset, offset + limit - 1)
else
  local walk, probe = KEYS[1], KEYS[2]
  if redis.call('ZCARD', probe) < redis.call('ZCARD', walk) then
    walk, probe = probe, walk
  end
  ids = {}
  local skip, start, chunk = offset, 0, 256
  while #ids < limit do
    local page = redis.call('ZREVRANGE', walk, start, start + chunk - 1)
    for _, id in ipairs(page) do
      if redis.call('ZSCORE', probe, id) then
        if skip > 0 then
          skip = skip - 1
        else
          ids[#ids + 1] = id
          if #ids >= limit then
            break
          end
        end
      end
    end
    if #page < chunk then
      break
    end
    start = start + chunk
  end
end
local out = {}
for _, id in ipairs(ids) do
  local row = redis.call('HMGET', runkey .. id, 'name', 'status', 'at')
  if row[3] then
    out[#out + 1] = id
    out[#out + 1] = row[1]
    out[#out + 1] = row[2]
    out[#out + 1] = row[3]
  end
end
return out
