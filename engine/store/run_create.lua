-- Create a run at version 1, or return 0 when the wfid is taken.
-- KEYS[1] run hash; ARGV: prefix, wfid, state, status, name, at, errors ("" = none),
-- live (the run's summary JSON, engine.store.base.transition), outcome,
-- transitions stream MAXLEN ("0" = keep no stream), the write's token (optional),
-- the listeners' version key ("" = none; when given {1, listeners' version} is
-- returned on success), and (optional) the run's definition: its key, source
-- and filename ("" = none), stored in this same call unless already stored
-- (definition_put.lua: first one wins). RedisStore.create_run_written: a
-- launch in one round trip.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if ARGV[13] and ARGV[13] ~= '' and redis.call('EXISTS', ARGV[13]) == 0 then
  if ARGV[15] == '' then
    redis.call('HSET', ARGV[13], 'source', ARGV[14])
  else
    redis.call('HSET', ARGV[13], 'source', ARGV[14], 'filename', ARGV[15])
  end
end
local prefix, wfid, status, name, at, errors =
  ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if errors == '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'v', 1, 'status', status, 'name', name, 'at', at,
    'live', ARGV[8], 'outcome', ARGV[9])
else
  redis.call('HSET', KEYS[1], 'state', ARGV[3], 'v', 1, 'status', status, 'name', name, 'at', at,
    'live', ARGV[8], 'outcome', ARGV[9], 'errors', errors)
  redis.call('ZADD', prefix .. 'runs:errors', at, wfid)
end
redis.call('ZADD', prefix .. 'runs', at, wfid)
redis.call('ZADD', prefix .. 'runs:status:' .. status, at, wfid)
redis.call('ZADD', prefix .. 'runs:name:' .. name, at, wfid)
if ARGV[10] ~= '0' then
  redis.call('XADD', prefix .. 'transitions', 'MAXLEN', '~', ARGV[10], '*', 'kind', 'run', 'data', ARGV[8])
end
if ARGV[11] then
  redis.call('HSET', KEYS[1], 'w', ARGV[11])  -- the write's token, as run_save.lua
end
if ARGV[12] and ARGV[12] ~= '' then
  return {1, tonumber(redis.call('GET', ARGV[12]) or '0')}
end
return 1
