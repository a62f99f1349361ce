-- Delete a run and its index entries; returns 1 if it was stored.
-- KEYS[1] run hash; ARGV: prefix, wfid
local cur = redis.call('HMGET', KEYS[1], 'status', 'name')
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
local prefix, wfid = ARGV[1], ARGV[2]
redis.call('ZREM', prefix .. 'runs', wfid)
redis.call('ZREM', prefix .. 'runs:errors', wfid)
if cur[1] then
  redis.call('ZREM', prefix .. 'runs:status:' .. cur[1], wfid)
end
if cur[2] then
  redis.call('ZREM', prefix .. 'runs:name:' .. cur[2], wfid)
end
-- the transitions stream tells of stored runs: with none left, it goes too
if redis.call('EXISTS', prefix .. 'runs') == 0 then
  redis.call('DEL', prefix .. 'transitions')
end
return 1
