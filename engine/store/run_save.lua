-- Compare-and-set a run's state and keep its index entries in step.
-- KEYS[1] run hash
-- ARGV: prefix, wfid, expected version, state, status, name, at, errors ("" = none),
-- live (the run's summary JSON, engine.store.base.transition), outcome,
-- transitions stream MAXLEN ("0" = keep no stream), the write's token (optional),
-- the token the run's last write must have ("" = any: RedisStore.save_run_written),
-- the listeners' version key (optional: then {new version, listeners' version} is returned)
-- A save that changes the summary appends it to the transitions stream
-- (kind = 'run' when the status changed, else 'step'), in this same call.
-- Returns the new version, 0 on a version mismatch, -1 when the run is absent.
local cur = redis.call('HMGET', KEYS[1], 'v', 'status', 'name', 'at', 'errors', 'live', 'w')
if not cur[1] then
  return -1
end
if cur[1] ~= ARGV[3] then
  return 0
end
if ARGV[13] and ARGV[13] ~= '' and cur[7] ~= ARGV[13] then
  return 0
end
local prefix, wfid, status, name, at, errors, live =
  ARGV[1], ARGV[2], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local v = tonumber(cur[1]) + 1
local moved = cur[4] ~= at  -- a new launch time re-scores every index entry

if errors == '' then
  redis.call('HSET', KEYS[1], 'state', ARGV[4], 'v', v, 'status', status, 'name', name, 'at', at,
    'live', live, 'outcome', ARGV[10])
  if cur[5] then
    redis.call('HDEL', KEYS[1], 'errors')
    redis.call('ZREM', prefix .. 'runs:errors', wfid)
  end
else
  redis.call('HSET', KEYS[1], 'state', ARGV[4], 'v', v, 'status', status, 'name', name, 'at', at,
    'live', live, 'outcome', ARGV[10], 'errors', errors)
  if moved or not cur[5] then
    redis.call('ZADD', prefix .. 'runs:errors', at, wfid)
  end
end

-- The status and the name index work alike: a changed value moves the run
-- from the old value's index to the new one's, a new launch time re-scores it.
local function reindex(index, old, new)
  if old ~= new then
    if old then
      redis.call('ZREM', prefix .. index .. old, wfid)
    end
    redis.call('ZADD', prefix .. index .. new, at, wfid)
  elseif moved then
    redis.call('ZADD', prefix .. index .. new, at, wfid)
  end
end
reindex('runs:status:', cur[2], status)
reindex('runs:name:', cur[3], name)
if moved then
  redis.call('ZADD', prefix .. 'runs', at, wfid)
end
if cur[6] ~= live and ARGV[11] ~= '0' then
  redis.call('XADD', prefix .. 'transitions', 'MAXLEN', '~', ARGV[11], '*',
    'kind', cur[2] ~= status and 'run' or 'step', 'data', live)
end
if ARGV[12] then
  -- the write's own token: a save sent again after its reply was lost finds
  -- it here and knows it was done (RedisStore._own_write)
  redis.call('HSET', KEYS[1], 'w', ARGV[12])
end
if ARGV[14] then
  return {v, tonumber(redis.call('GET', ARGV[14]) or '0')}
end
return v
