-- Release a mutex (when ARGV[1] holds it) or leave its queue (when it waits).
-- On release the first waiter becomes the holder and is returned.
-- KEYS[1] holder key, KEYS[2] waiter list; ARGV[1] holder
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  return false
end
local nxt = redis.call('LPOP', KEYS[2])
if nxt then
  redis.call('SET', KEYS[1], nxt)
  return nxt
end
redis.call('DEL', KEYS[1])
return false
