-- Apply one batch of pre-aggregated operations to the rollups of ONE UTC day.
--
-- KEYS[1]  the day's template set (routing key; every key touched carries the
--          same {d<day>} hash tag, so the whole call stays in one cluster slot)
-- ARGV[1]  the day's key prefix (aggregators/keys.py: day_prefix)
-- ARGV[3]  dedupe horizon in seconds: a latency guard hash expires this long
--          after its last write
-- ARGV[2]  JSON array of operations:
--   {"s", t, u, hh, agent_mask, connected, k0, k1, k2, k3, k4}  session minutes
--   {"p", t, u, hh, app_key, minute_mask}                       app minutes
--   {"l", t, u, hh, id_digest, bin}                             one latency sample
--   {"b", field, time_us, id, value, {{digest, definition}}}    one build (upsert);
--        value is the JSON [time_us, id, [[definition digest, value], ...]]
--
-- Idempotence by construction: cell minutes are OR-ed bitmasks, the
-- connection flag only turns on, and latency samples are guarded by their
-- event-id digest (SADD).  The guards are the one state that grows with
-- every sample, so each guard hash expires a dedupe horizon after its last
-- write: a redelivery within the horizon changes nothing, an older re-read
-- goes through a rebuild.  Every aggregate moves by the delta between the
-- cell's derived values before and after the OR, so re-applying any batch
-- changes nothing.  The caps over templates (min(sum, 30) per half-hour and
-- user) are computed from the user's cells in its other templates of that
-- half-hour (hash "ut": user -> its templates of the day), so no per-sample
-- sums are kept.  Returns the number of operations that changed something,
-- and bumps the day's version (readers cache what they folded per version) and,
-- when a build changed, the day's builds version.

local P = ARGV[1]
local ops = cjson.decode(ARGV[2])
local HORIZON = tonumber(ARGV[3])
local band, bor = bit.band, bit.bor
local CAP = 30

local function pop(x)
  local c = 0
  while x ~= 0 do
    x = band(x, x - 1)
    c = c + 1
  end
  return c
end

local function num(v)
  if v then return tonumber(v) end
  return 0
end

-- Day masks have 48 bits: beyond Lua's 32-bit bit library, so plain arithmetic
-- on doubles (exact below 2^53) and an explicit integer format.
local function setbit48(key, field, hh)
  local m = num(redis.call('HGET', key, field))
  local b = 2 ^ hh
  if math.floor(m / b) % 2 == 0 then
    redis.call('HSET', key, field, string.format('%.0f', m + b))
  end
end

-- The user's templates of the day ("ut": user -> "t1|t2|..."), read once per call.
local user_templates = {}

local function templates_of(u)
  local list = user_templates[u]
  if not list then
    list = {}
    local raw = redis.call('HGET', P .. 'ut', u)
    if raw then
      for t in string.gmatch(raw, '[^|]+') do list[#list + 1] = t end
    end
    user_templates[u] = list
  end
  return list
end

-- Marks (t, u) present; returns true when it is new.
local function add_template(t, u)
  local list = templates_of(u)
  for _, x in ipairs(list) do
    if x == t then return false end
  end
  list[#list + 1] = t
  redis.call('HSET', P .. 'ut', u, table.concat(list, '|'))
  return true
end

-- Move the capped all-template aggregate by the change of min(sum over
-- templates, 30) when template t's value of one (half-hour, user) goes from
-- old to new.  value_in(cell key) reads the same quantity in another
-- template's cell.  One template's value never exceeds 30 (a 30-bit mask),
-- so a user in one template moves the aggregate by new - old.
local function capped(t, u, aggkey, aggfield, old, new, value_in)
  if new == old then return end
  local others = 0
  for _, x in ipairs(templates_of(u)) do
    if x ~= t then others = others + value_in(P .. 'c:' .. x .. ':' .. u) end
  end
  local cd = math.min(others + new, CAP) - math.min(others + old, CAP)
  if cd ~= 0 then redis.call('HINCRBY', aggkey, aggfield, cd) end
end

local function usage_of(agent, connected, apps)
  if connected == 1 then return pop(bor(apps, agent)) end
  return pop(apps)
end

-- Field "<hh>|a" holds the agent minutes (bits 0-29) and the connected flag
-- (bit 30): one field instead of two.
local CONNECTED = 2 ^ 30

local function agent_of(raw)
  if raw >= CONNECTED then return raw - CONNECTED, 1 end
  return raw, 0
end

local function usage_in(hh)
  return function(ck)
    local cur = redis.call('HMGET', ck, hh .. '|a', hh .. '|u')
    local agent, connected = agent_of(num(cur[1]))
    return usage_of(agent, connected, num(cur[2]))
  end
end

local function usage_delta(t, u, hh, old, new)
  local d = new - old
  if d == 0 then return end
  redis.call('HINCRBY', P .. 'g:' .. t .. ':m', u, d)
  if old == 0 then
    setbit48(P .. 'g:' .. t .. ':a', u, hh)
    setbit48(P .. 'g:all:a', u, hh)
  end
  capped(t, u, P .. 'g:all:m', u, old, new, usage_in(hh))
end

local function kind_in(hh, i)
  return function(ck)
    local cur = redis.call('HMGET', ck, hh .. '|a', hh .. '|k|' .. i)
    if num(cur[1]) < CONNECTED then return 0 end
    return pop(num(cur[2]))
  end
end

local function kind_delta(t, u, hh, i, old, new)
  if new == old then return end
  redis.call('HINCRBY', P .. 'g:' .. t .. ':x', 'k|' .. i, new - old)
  capped(t, u, P .. 'g:all:x', 'k|' .. i, old, new, kind_in(hh, i))
end

local function app_in(hh, key)
  return function(ck)
    return pop(num(redis.call('HGET', ck, hh .. '|p|' .. key)))
  end
end

-- Half-hours of the day holding any cell data (field "h" of the all-scope x
-- aggregate): a reader whose window ends mid-day may use the whole-day
-- aggregates when no data lies at or after its end.  Marked once per call.
local spanned = {}

local function touch(t, u, hh)
  if add_template(t, u) then redis.call('SADD', P .. 'tpls', t) end
  if not spanned[hh] then
    spanned[hh] = true
    setbit48(P .. 'g:all:x', 'h', hh)
  end
end

local function apply_session(op)
  local t, u, hh, amask, conn = op[2], op[3], op[4], op[5], op[6]
  local ck = P .. 'c:' .. t .. ':' .. u
  local hp = hh .. '|'
  local cur = redis.call('HMGET', ck, hp .. 'a', hp .. 'u')
  local a0, c0 = agent_of(num(cur[1]))
  local apps = num(cur[2])
  local a1 = bor(a0, amask)
  local c1 = c0
  if conn == 1 then c1 = 1 end
  touch(t, u, hh)
  local changed = 0
  if a1 ~= a0 or c1 ~= c0 then
    redis.call('HSET', ck, hp .. 'a', string.format('%.0f', a1 + c1 * CONNECTED))
    changed = 1
  end
  for i = 0, 4 do
    local km = op[7 + i]
    if km ~= 0 or c1 ~= c0 then
      local f = hp .. 'k|' .. i
      local k0 = num(redis.call('HGET', ck, f))
      local k1 = bor(k0, km)
      if k1 ~= k0 then
        redis.call('HSET', ck, f, k1)
        changed = 1
      end
      local e0, e1 = 0, 0
      if c0 == 1 then e0 = pop(k0) end
      if c1 == 1 then e1 = pop(k1) end
      kind_delta(t, u, hh, i, e0, e1)
    end
  end
  usage_delta(t, u, hh, usage_of(a0, c0, apps), usage_of(a1, c1, apps))
  return changed
end

local function apply_app(op)
  local t, u, hh, key, mask = op[2], op[3], op[4], op[5], op[6]
  local ck = P .. 'c:' .. t .. ':' .. u
  local hp = hh .. '|'
  local f = hp .. 'p|' .. key
  local p0 = num(redis.call('HGET', ck, f))
  local p1 = bor(p0, mask)
  if p1 == p0 then return 0 end
  touch(t, u, hh)
  redis.call('HSET', ck, f, p1)
  local n0, n1 = pop(p0), pop(p1)
  redis.call('HINCRBY', P .. 'g:' .. t .. ':x', 'p|' .. key, n1 - n0)
  capped(t, u, P .. 'g:all:x', 'p|' .. key, n0, n1, app_in(hh, key))
  if p0 == 0 then
    -- Run masks are never capped: readers OR the templates' for the all scope.
    setbit48(P .. 'g:' .. t .. ':x', 'r|' .. key .. '|' .. u, hh)
  end
  local cur = redis.call('HMGET', ck, hp .. 'a', hp .. 'u')
  local a, c = agent_of(num(cur[1]))
  local apps0 = num(cur[2])
  local apps1 = bor(apps0, mask)
  if apps1 ~= apps0 then
    redis.call('HSET', ck, hp .. 'u', apps1)
    usage_delta(t, u, hh, usage_of(a, c, apps0), usage_of(a, c, apps1))
  end
  return 1
end

-- Latency sketch bins, packed as text: per (template, user) in the day
-- aggregate "g:<t>:l" (latency is never capped, so readers sum templates: no
-- "all" copy) and per half-hour in the cell hash (field "<hh>|l").  Packing:
-- entries sorted by bin; the first is a varint of the zigzagged bin and one
-- of the count; each next one is a single character 'p'..'{' when its gap to
-- the previous bin is 1-4 and its count 1-3 (most are: one agent's samples
-- crowd a few neighbouring bins), else a varint of the gap and one of the
-- count.  A varint is base-32 digits, least significant first: '0'..'O' ends
-- it, 'P'..'o' continues.  Text, because the API's client decodes replies as
-- UTF-8.  Samples of one call are summed here first and each value is
-- decoded and re-encoded once per call, not once per sample.
local pending_packed = {}
local JOINT = 112  -- 'p': the first one-character entry

local function add_bin(pending, key, field, bin)
  local per_key = pending[key]
  if not per_key then
    per_key = {}
    pending[key] = per_key
  end
  local adds = per_key[field]
  if not adds then
    adds = {}
    per_key[field] = adds
  end
  adds[bin] = (adds[bin] or 0) + 1
end

local function put_varint(buf, v)
  while v >= 32 do
    buf[#buf + 1] = string.char(80 + v % 32)
    v = math.floor(v / 32)
  end
  buf[#buf + 1] = string.char(48 + v)
end

local function unpack_bins(s, bins)
  local i, n, prev = 1, #s, nil
  local function read()
    local v, mul = 0, 1
    while true do
      local c = string.byte(s, i)
      i = i + 1
      if c >= 80 then
        v = v + (c - 80) * mul
        mul = mul * 32
      else
        return v + (c - 48) * mul
      end
    end
  end
  while i <= n do
    local bin, count
    local c = string.byte(s, i)
    if prev ~= nil and c >= JOINT then
      i = i + 1
      bin = prev + math.floor((c - JOINT) / 3) + 1
      count = (c - JOINT) % 3 + 1
    else
      local d = read()
      if prev == nil then
        if d % 2 == 0 then bin = d / 2 else bin = -(d + 1) / 2 end
      else
        bin = prev + d
      end
      count = read()
    end
    bins[bin] = (bins[bin] or 0) + count
    prev = bin
  end
end

local function pack_bins(bins)
  local order = {}
  for b in pairs(bins) do order[#order + 1] = b end
  table.sort(order)
  local buf, prev = {}, nil
  for _, b in ipairs(order) do
    local count = bins[b]
    if prev == nil then
      if b >= 0 then put_varint(buf, 2 * b) else put_varint(buf, -2 * b - 1) end
      put_varint(buf, count)
    elseif b - prev <= 4 and count <= 3 then
      buf[#buf + 1] = string.char(JOINT + (b - prev - 1) * 3 + count - 1)
    else
      put_varint(buf, b - prev)
      put_varint(buf, count)
    end
    prev = b
  end
  return table.concat(buf)
end

local function flush_bins()
  for key, fields in pairs(pending_packed) do
    for field, adds in pairs(fields) do
      local raw = redis.call('HGET', key, field)
      local bins = {}
      if raw then unpack_bins(raw, bins) end
      for b, n in pairs(adds) do bins[b] = (bins[b] or 0) + n end
      redis.call('HSET', key, field, pack_bins(bins))
    end
  end
end

-- Latency guards (set "l:<t>:<u>:<hh>" of 64-bit event-id digests, small
-- enough per half-hour to stay an intset) are the one state that grows with
-- every sample: each set expires HORIZON seconds after its last write.
local guarded = {}

local function apply_latency(op)
  local t, u, hh, digest, bin = op[2], op[3], op[4], op[5], op[6]
  local gk = P .. 'l:' .. t .. ':' .. u .. ':' .. hh
  if redis.call('SADD', gk, digest) == 0 then
    return 0
  end
  guarded[gk] = true
  touch(t, u, hh)
  add_bin(pending_packed, P .. 'c:' .. t .. ':' .. u, hh .. '|l', bin)
  add_bin(pending_packed, P .. 'g:' .. t .. ':l', u, bin)
  return 1
end

local builds_changed = false

-- Builds of one (template, workspace, build_number): the newest report wins
-- (greatest time, then greatest id), so redelivery in any order converges.
-- A payload names its parameters' definitions (name, texts, options) by
-- digest; each definition is kept once per day in hash "pdefs".
local function apply_build(op)
  local field, time_us, id, value, defs = op[2], op[3], op[4], op[5], op[6]
  local raw = redis.call('HGET', P .. 'builds', field)
  if raw then
    local ok, cur = pcall(cjson.decode, raw)
    -- An unreadable stored build (never written by this script) is replaced.
    if ok and type(cur) == 'table' and type(cur[1]) == 'number' then
      local ct, nt = cur[1], tonumber(time_us)
      if ct > nt or (ct == nt and tostring(cur[2]) >= id) then return 0 end
    end
  end
  for _, def in ipairs(defs) do
    redis.call('HSETNX', P .. 'pdefs', def[1], def[2])
  end
  redis.call('HSET', P .. 'builds', field, value)
  builds_changed = true
  return 1
end

local changed = 0
for _, op in ipairs(ops) do
  local kind = op[1]
  if kind == 's' then
    changed = changed + apply_session(op)
  elseif kind == 'p' then
    changed = changed + apply_app(op)
  elseif kind == 'l' then
    changed = changed + apply_latency(op)
  elseif kind == 'b' then
    changed = changed + apply_build(op)
  end
end
flush_bins()
for gk in pairs(guarded) do redis.call('EXPIRE', gk, HORIZON) end
if changed > 0 then redis.call('INCR', P .. 'ver') end
-- Builds have a version of their own: readers re-list a day's builds only when it moves.
if builds_changed then redis.call('INCR', P .. 'bver') end
return changed
