-- Add or replace a participant registration.
-- KEYS[1] order list (patterns), KEYS[2] hash pattern -> registration JSON
-- ARGV: pattern, registration JSON, position ("" = none)
-- Same pattern and no position: replaced in place. With a position, the
-- registration is (re)inserted there, with list.insert() semantics.
local pattern, position = ARGV[1], ARGV[3]
local known = redis.call('HSET', KEYS[2], pattern, ARGV[2]) == 0
if position == '' then
  if not known then
    redis.call('RPUSH', KEYS[1], pattern)
  end
  return 1
end
if known then
  redis.call('LREM', KEYS[1], 0, pattern)
end
local n = redis.call('LLEN', KEYS[1])
local pos = tonumber(position)
if pos < 0 then
  pos = math.max(0, n + pos)
end
if pos >= n then
  redis.call('RPUSH', KEYS[1], pattern)
else
  redis.call('LINSERT', KEYS[1], 'BEFORE', redis.call('LINDEX', KEYS[1], pos), pattern)
end
return 1
