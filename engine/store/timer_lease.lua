-- Lease the timers due at ARGV[1] or earlier, earliest first, at most ARGV[3]
-- of them: each is moved to due ARGV[2] (now + lease) and returned, so one
-- caller gets it now and, if that caller dies before it acknowledges the
-- timer (timer_ack.lua), another gets it again when the lease runs out.
-- KEYS[1] timers sorted set, KEYS[2] payload hash
-- Returns a flat array: id, payload, id, payload, ... (payload false if lost)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then
  return {}
end
local out = {}
for i = 1, #ids, 1000 do
  local slice = {unpack(ids, i, math.min(i + 999, #ids))}
  local args = {}
  for _, id in ipairs(slice) do
    args[#args + 1] = ARGV[2]
    args[#args + 1] = id
  end
  redis.call('ZADD', KEYS[1], unpack(args))
  local payloads = redis.call('HMGET', KEYS[2], unpack(slice))
  for j, id in ipairs(slice) do
    out[#out + 1] = id
    out[#out + 1] = payloads[j]
  end
end
return out
