-- Remove and return timers due at ARGV[1] or earlier, earliest first, at most
-- ARGV[2] of them. Atomic, so each timer goes to exactly one caller.
-- KEYS[1] timers sorted set, KEYS[2] payload hash
-- Returns a flat array: id, payload, id, payload, ... (payload false if lost)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then
  return {}
end
local out = {}
-- in slices: unpack() is bounded by the Lua C stack
for i = 1, #ids, 1000 do
  local slice = {unpack(ids, i, math.min(i + 999, #ids))}
  redis.call('ZREM', KEYS[1], unpack(slice))
  local payloads = redis.call('HMGET', KEYS[2], unpack(slice))
  redis.call('HDEL', KEYS[2], unpack(slice))
  for j, id in ipairs(slice) do
    out[#out + 1] = id
    out[#out + 1] = payloads[j]
  end
end
return out
