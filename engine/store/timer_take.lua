-- Take the timers due at ARGV[1] or earlier, earliest first, at most ARGV[3]
-- of them, and return them. One script for both ways of taking a timer, as
-- they differ only in what happens to the taken ones:
--   ARGV[2] == ''  claim: each is removed with its payload, so it goes to
--                  exactly one caller, once;
--   ARGV[2] = due  lease: each is moved to that due (now + lease), so one
--                  caller gets it now and, if that caller dies before it
--                  acknowledges the timer (timer_ack.lua), another gets it
--                  again when the lease runs out.
-- Atomic either way. KEYS[1] timers sorted set, KEYS[2] payload hash
-- Returns a flat array: id, payload, id, payload, ... (payload false if lost)
local lease = ARGV[2]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
if #ids == 0 then
  return {}
end
local out = {}
-- in slices: unpack() is bounded by the Lua C stack
for i = 1, #ids, 1000 do
  local slice = {unpack(ids, i, math.min(i + 999, #ids))}
  local payloads = redis.call('HMGET', KEYS[2], unpack(slice))
  if lease == '' then
    redis.call('ZREM', KEYS[1], unpack(slice))
    redis.call('HDEL', KEYS[2], unpack(slice))
  else
    local args = {}
    for _, id in ipairs(slice) do
      args[#args + 1] = lease
      args[#args + 1] = id
    end
    redis.call('ZADD', KEYS[1], unpack(args))
  end
  for j, id in ipairs(slice) do
    out[#out + 1] = id
    out[#out + 1] = payloads[j]
  end
end
return out
