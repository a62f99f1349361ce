-- Store a definition unless its digest is already stored (first one wins).
-- KEYS[1] definition hash; ARGV: source, filename ("" = none)
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if ARGV[2] == '' then
  redis.call('HSET', KEYS[1], 'source', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'source', ARGV[1], 'filename', ARGV[2])
end
return 1
