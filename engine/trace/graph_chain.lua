-- The chain an event belongs to (engine/trace/graph.py): its root and the
-- events hanging under that root.
-- KEYS: none. ARGV: prefix, id
-- Returns {root id, root value or false, member id, member value, ...}.
local prefix, id = ARGV[1], ARGV[2]
local ek = prefix .. 'e:'
local cur = id
for _ = 1, 64 do
  local v = redis.call('GET', ek .. cur)
  if not v or string.byte(v, 1) == 10 then
    break
  end
  local p1 = string.find(v, '\n', 1, true)
  local p2 = string.find(v, '\n', p1 + 1, true)
  if p2 == p1 + 1 then
    break
  end
  cur = string.sub(v, p1 + 1, p2 - 1)
end
local root = redis.call('GET', ek .. cur)
if root and string.byte(root, 1) == 10 then
  root = false
end
local out = {cur, root or false}
for _, member in ipairs(redis.call('LRANGE', prefix .. 'c:' .. cur, 0, -1)) do
  out[#out + 1] = member
  out[#out + 1] = redis.call('GET', ek .. member) or false
end
return out
