-- Store a batch of Eiffel events in the traceability graph (engine/trace/graph.py).
-- KEYS: none (every key is computed from the prefix; see graph.py for the layout)
-- ARGV[1] prefix, then 4 per event: id, time (ms), index keys ("\n"-separated),
--   the node with no in-links yet
-- A node is one string:  type \n chain-parent \n out-links \n in-links \n json
-- (out-links "TYPE=target,...", chain parent "" for a chain root)
-- A placeholder (a link target not stored yet) has an empty type and json:
-- "\n\n\n<in-links>\n". In-links are "TYPE=source," records.
-- The nodes the batch touches are read with one MGET up front and written
-- with MSET at the end, each once however many links it gains (in-link
-- records wait in `adds` until then).
-- Returns {stored, duplicates, waiting, placeholders created, resolved}.
local prefix = ARGV[1]
local ek = prefix .. 'e:'
local k_wait, k_ph = prefix .. 'waiting', prefix .. 'placeholders'
local stored, dups, waiting, created, resolved = 0, 0, 0, 0, 0
local find, sub, byte, gmatch = string.find, string.sub, string.byte, string.gmatch
local CHUNK = 200

local cache = {}      -- id -> node value, false when absent
local adds = {}       -- id -> in-link records gained in this batch (not in cache yet)
local dirty, is_dirty = {}, {}
local by_type, types = {}, {}         -- type -> {time, id, time, id, ...}
local chain_adds, roots = {}, {}      -- root -> {id, ...}
local ph_new, ph_list = {}, {}        -- placeholders made in this batch

-- read every node the batch names: the events and their link targets
do
  local want, wanted = {}, {}
  for i = 2, #ARGV, 4 do
    local id = ARGV[i]
    if not wanted[id] then
      wanted[id] = true
      want[#want + 1] = id
    end
    local v = ARGV[i + 3]
    local p = find(v, '\n', 1, true)
    p = find(v, '\n', p + 1, true)
    for target in gmatch(sub(v, p + 1, find(v, '\n', p + 1, true) - 1), '[^,=]+=([^,]+)') do
      if not wanted[target] then
        wanted[target] = true
        want[#want + 1] = target
      end
    end
  end
  for j = 1, #want, CHUNK do
    local keys = {}
    local hi = math.min(j + CHUNK - 1, #want)
    for k = j, hi do
      keys[#keys + 1] = ek .. want[k]
    end
    local values = redis.call('MGET', unpack(keys))
    for k = j, hi do
      cache[want[k]] = values[k - j + 1]
    end
  end
end

local function node(id)
  local v = cache[id]
  if v == nil then
    v = redis.call('GET', ek .. id)
    cache[id] = v
  end
  return v
end

local function mark(id)
  if not is_dirty[id] then
    is_dirty[id] = true
    dirty[#dirty + 1] = id
  end
end

local function add_in(id, rec)
  local list = adds[id]
  if list then
    list[#list + 1] = rec
  else
    adds[id] = {rec}
  end
  mark(id)
end

-- positions of the 3rd and 4th newline (the in-links line lies between them)
local function in_span(v)
  local p = find(v, '\n', 1, true)
  p = find(v, '\n', p + 1, true)
  local p3 = find(v, '\n', p + 1, true)
  return p3, find(v, '\n', p3 + 1, true)
end

-- the root of an event's chain: follow chain parents until a root, or a
-- target not stored yet (a provisional root, merged when it arrives)
local function root_of(id)
  local cur = id
  for _ = 1, 64 do
    local v = node(cur)
    if not v or byte(v, 1) == 10 then
      return cur
    end
    local p1 = find(v, '\n', 1, true)
    local p2 = find(v, '\n', p1 + 1, true)
    if p2 == p1 + 1 then
      return cur
    end
    cur = sub(v, p1 + 1, p2 - 1)
  end
  return cur
end

local function chain_add(root, ids)
  local list = chain_adds[root]
  if not list then
    list = {}
    chain_adds[root] = list
    roots[#roots + 1] = root
  end
  for _, id in ipairs(ids) do
    list[#list + 1] = id
  end
end

for i = 2, #ARGV, 4 do
  local id, time, idx, value = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local p1 = find(value, '\n', 1, true)
  local p2 = find(value, '\n', p1 + 1, true)
  local p3 = find(value, '\n', p2 + 1, true)
  local etype, cp, out = sub(value, 1, p1 - 1), sub(value, p1 + 1, p2 - 1), sub(value, p2 + 1, p3 - 1)
  local old = node(id)
  if old and byte(old, 1) ~= 10 then
    dups = dups + 1
  else
    local inrec = ''
    if old then
      local o3, o4 = in_span(old)
      inrec = sub(old, o3 + 1, o4 - 1)
      if adds[id] then
        inrec = inrec .. table.concat(adds[id])
        adds[id] = nil
      end
    end
    if inrec == '' then
      cache[id] = value
    else
      cache[id] = sub(value, 1, p3) .. inrec .. sub(value, p3 + 1)
    end
    mark(id)
    stored = stored + 1
    local tlist = by_type[etype]
    if not tlist then
      tlist = {}
      by_type[etype] = tlist
      types[#types + 1] = etype
    end
    tlist[#tlist + 1] = time
    tlist[#tlist + 1] = id
    for k in gmatch(idx, '[^\n]+') do
      redis.call('ZADD', prefix .. 'x:' .. k, time, id)
    end

    -- reverse links on every target (a placeholder for the missing ones)
    local missing, seen = 0, {}
    for ltype, target in gmatch(out, '([^,=]+)=([^,]+)') do
      local tv = node(target)
      add_in(target, ltype .. '=' .. id .. ',')
      if tv then
        if byte(tv, 1) == 10 and not seen[target] then
          missing = missing + 1
        end
      else
        cache[target] = '\n\n\n\n'
        ph_new[target] = true
        ph_list[#ph_list + 1] = target
        created = created + 1
        missing = missing + 1
      end
      seen[target] = true
    end
    if missing > 0 then
      redis.call('HSET', k_wait, id, missing)
      waiting = waiting + 1
    end

    -- this event was a placeholder: the events waiting on it wait for one less
    if old then
      if ph_new[id] then
        ph_new[id] = nil
      else
        redis.call('SREM', k_ph, id)
      end
      local done = {}
      for src in gmatch(inrec, '[^,=]+=([^,]+)') do
        if not done[src] then
          done[src] = true
          if redis.call('HINCRBY', k_wait, src, -1) <= 0 then
            redis.call('HDEL', k_wait, src)
            resolved = resolved + 1
          end
        end
      end
    end

    -- the chain index: one list per root, of the events hanging under it
    if cp ~= '' then
      local root = root_of(cp)
      chain_add(root, {id})
      if old then  -- events that hung on this one move to its root
        local hung = redis.call('LRANGE', prefix .. 'c:' .. id, 0, -1)
        if #hung > 0 then
          redis.call('DEL', prefix .. 'c:' .. id)
          chain_add(root, hung)
        end
        if chain_adds[id] then
          chain_add(root, chain_adds[id])
          chain_adds[id] = nil
        end
      end
    end
  end
end

-- write what the batch changed
for j = 1, #dirty, CHUNK do
  local args = {}
  for k = j, math.min(j + CHUNK - 1, #dirty) do
    local id = dirty[k]
    local v, list = cache[id], adds[id]
    if list then
      local _, p4 = in_span(v)
      v = sub(v, 1, p4 - 1) .. table.concat(list) .. sub(v, p4)
    end
    args[#args + 1] = ek .. id
    args[#args + 1] = v
  end
  redis.call('MSET', unpack(args))
end
for _, etype in ipairs(types) do
  local tlist = by_type[etype]
  for j = 1, #tlist, 2 * CHUNK do
    redis.call('ZADD', prefix .. 't:' .. etype, unpack(tlist, j, math.min(j + 2 * CHUNK - 1, #tlist)))
  end
end
for _, root in ipairs(roots) do
  local list = chain_adds[root]
  if list then
    for j = 1, #list, CHUNK do
      redis.call('RPUSH', prefix .. 'c:' .. root, unpack(list, j, math.min(j + CHUNK - 1, #list)))
    end
  end
end
for _, target in ipairs(ph_list) do
  if ph_new[target] then
    redis.call('SADD', k_ph, target)
  end
end
if stored > 0 then
  redis.call('HINCRBY', prefix .. 'stats', 'events', stored)
end
return {stored, dups, waiting, created, resolved}
