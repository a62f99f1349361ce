-- Remove a leased timer once its message is handled, unless it was
-- scheduled again meanwhile (its due time is no longer the lease's).
-- KEYS[1] timers sorted set, KEYS[2] payload hash; ARGV[1] id, ARGV[2] leased due
local due = redis.call('ZSCORE', KEYS[1], ARGV[1])
if due and tonumber(due) == tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
