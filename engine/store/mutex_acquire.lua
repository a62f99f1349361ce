-- Take a mutex (1) or queue behind its holder (0); idempotent.
-- KEYS[1] holder key, KEYS[2] waiter list; ARGV[1] holder
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
if holder == ARGV[1] then
  return 1
end
if not redis.call('LPOS', KEYS[2], ARGV[1]) then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
return 0
