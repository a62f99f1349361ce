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
local out = {}
local found, visits = 0, 0
local seen = {[start] = true}
local frontier = {start}
local depth = 0

-- the links line of a node value: line 3 (out) or line 4 (in)
local function links_of(v)
  local p = string.find(v, '\n', 1, true)
  p = string.find(v, '\n', p + 1, true)
  local p3 = string.find(v, '\n', p + 1, true)
  if dir == 'up' then
    return string.sub(v, p + 1, p3 - 1)
  end
  return string.sub(v, p3 + 1, string.find(v, '\n', p3 + 1, true) - 1)
end

local values = {[start] = redis.call('GET', ek .. start)}
if not values[start] then
  return out
end
while depth < max_depth and #frontier > 0 do
  depth = depth + 1
  local next_frontier = {}
  for _, node in ipairs(frontier) do
    local v = values[node]
    values[node] = nil
    if v then
      for ltype, target in string.gmatch(links_of(v), '([^,=]+)=([^,]+)') do
        if not seen[target] and (ltypes == '' or string.find(ltypes, ',' .. ltype .. ',', 1, true)) then
          seen[target] = true
          visits = visits + 1
          local tv = redis.call('GET', ek .. target)
          if tv and string.byte(tv, 1) ~= 10 then
            local etype = string.sub(tv, 1, string.find(tv, '\n', 1, true) - 1)
            if etypes == '' or string.find(etypes, ',' .. etype .. ',', 1, true) then
              out[#out + 1] = target
              out[#out + 1] = depth
              out[#out + 1] = ltype
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
    end
  end
  frontier = next_frontier
end
return out
