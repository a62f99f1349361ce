-- Breadth-first walk of the traceability graph (engine/trace/graph.py).
-- KEYS: none. ARGV: prefix, start id, direction ("up" = follow the links an event
--   has, "down" = follow the links to it), depth, limit, link types (",TYPE,TYPE," or ""),
--   event types (",T1,T2," or ""), most nodes to visit
-- Returns a flat list: id, depth, via (the link type it was reached by), node value,
-- ... in breadth-first order, at most `limit` entries; targets not stored yet are
-- walked past silently (they have no links of their own).
local prefix, start, dir = ARGV[1], ARGV[2], ARGV[3]
local max_depth, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local ltypes, etypes, max_visits = ARGV[6], ARGV[7], tonumber(ARGV[8])
local ek = prefix .. 'e:'
local find, sub, byte = string.find, string.sub, string.byte
local CHUNK = 64  -- nodes read per MGET

-- ",A,B," -> {A = true, B = true}; nil for "" (no filter)
local function set_of(list)
  if list == '' then
    return nil
  end
  local set = {}
  for item in string.gmatch(list, '[^,]+') do
    set[item] = true
  end
  return set
end
local link_ok, type_ok = set_of(ltypes), set_of(etypes)
local out = {}
local found, visits = 0, 0
local seen = {[start] = true}
local frontier = {start}
local depth = 0

-- the links line of a node value: line 3 (out) or line 4 (in)
local function links_of(v)
  local p = find(v, '\n', 1, true)
  p = find(v, '\n', p + 1, true)
  local p3 = find(v, '\n', p + 1, true)
  if dir == 'up' then
    return sub(v, p + 1, p3 - 1)
  end
  return sub(v, p3 + 1, find(v, '\n', p3 + 1, true) - 1)
end

local first = redis.call('GET', ek .. start)
if not first then
  return out
end
local values = {[start] = first}
-- one level at a time: gather the next level's (target, link type) in
-- discovery order, read their nodes with MGET in chunks, then take them in
-- that order (so the hits are in breadth-first order, as one GET each would)
while depth < max_depth and #frontier > 0 do
  depth = depth + 1
  local targets, vias = {}, {}
  for _, node in ipairs(frontier) do
    local v = values[node]
    values[node] = nil
    if v then
      for ltype, target in string.gmatch(links_of(v), '([^,=]+)=([^,]+)') do
        if not seen[target] and (not link_ok or link_ok[ltype]) then
          seen[target] = true
          targets[#targets + 1] = target
          vias[#vias + 1] = ltype
        end
      end
    end
  end
  local next_frontier = {}
  for j = 1, #targets, CHUNK do
    local hi = math.min(j + CHUNK - 1, #targets)
    local keys = {}
    for k = j, hi do
      keys[#keys + 1] = ek .. targets[k]
    end
    local got = redis.call('MGET', unpack(keys))
    for k = j, hi do
      local target, tv = targets[k], got[k - j + 1]
      visits = visits + 1
      if tv and byte(tv, 1) ~= 10 then
        if not type_ok or type_ok[sub(tv, 1, find(tv, '\n', 1, true) - 1)] then
          out[#out + 1] = target
          out[#out + 1] = depth
          out[#out + 1] = vias[k]
          out[#out + 1] = tv
          found = found + 1
          if found >= limit then
            return out
          end
        end
      end
      if tv then
        values[target] = tv
        next_frontier[#next_frontier + 1] = target
      end
      if visits >= max_visits then
        return out
      end
    end
  end
  frontier = next_frontier
end
return out
