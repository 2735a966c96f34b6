-- Apply one batch of pre-aggregated operations to the rollups of ONE UTC day.
--
-- KEYS[1]  the day's template set (routing key; every key touched carries the
--          same {d<day>} hash tag, so the whole call stays in one cluster slot)
-- ARGV[1]  the day's key prefix (aggregators/keys.py: day_prefix)
-- ARGV[2]  JSON array of operations:
--   {"s", t, u, hh, agent_mask, connected, k0, k1, k2, k3, k4}  session minutes
--   {"p", t, u, hh, app_key, minute_mask}                       app minutes
--   {"l", t, u, hh, id_digest, bin}                             one latency sample
--   {"b", field, time_us, id, payload}                          one build (upsert)
--
-- Idempotence by construction: cell minutes are OR-ed bitmasks, the
-- connection flag only turns on, and latency samples are guarded by their
-- event-id digest (HSETNX).  Every aggregate moves by the delta between the
-- cell's derived values before and after the OR, so re-applying any batch
-- changes nothing.  Returns the number of operations that changed something,
-- and bumps the day's version (readers cache what they folded per version) and,
-- when a build changed, the day's builds version.

local P = ARGV[1]
local ops = cjson.decode(ARGV[2])
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

-- Move a (half-hour, user) sum over templates by d and the capped all-template
-- aggregate by the change of min(sum, 30).
local function capped(sumfield, aggkey, aggfield, d)
  local new = redis.call('HINCRBY', P .. 'sum', sumfield, d)
  local cd = math.min(new, CAP) - math.min(new - d, CAP)
  if cd ~= 0 then redis.call('HINCRBY', aggkey, aggfield, cd) end
end

local function usage_of(agent, connected, apps)
  if connected == 1 then return pop(bor(apps, agent)) end
  return pop(apps)
end

local function usage_delta(t, u, hh, old, new)
  local d = new - old
  if d == 0 then return end
  redis.call('HINCRBY', P .. 'g:' .. t .. ':m', u, d)
  if old == 0 then
    setbit48(P .. 'g:' .. t .. ':a', u, hh)
    setbit48(P .. 'g:all:a', u, hh)
  end
  capped(hh .. '|m|' .. u, P .. 'g:all:m', u, d)
end

local function kind_delta(t, u, hh, i, d)
  if d == 0 then return end
  redis.call('HINCRBY', P .. 'g:' .. t .. ':x', 'k|' .. i, d)
  capped(hh .. '|k|' .. i .. '|' .. u, P .. 'g:all:x', 'k|' .. i, d)
end

-- Half-hours of the day holding any cell data (field "h" of the all-scope x
-- aggregate): a reader whose window ends mid-day may use the whole-day
-- aggregates when no data lies at or after its end.  Marked once per call.
local spanned = {}

local function touch(t, u, hh)
  redis.call('SADD', P .. 'tpls', t)
  redis.call('SADD', P .. 'cells', t .. '|' .. u)
  if not spanned[hh] then
    spanned[hh] = true
    setbit48(P .. 'g:all:x', 'h', hh)
  end
end

local function apply_session(op)
  local t, u, hh, amask, conn = op[2], op[3], op[4], op[5], op[6]
  local ck = P .. 'c:' .. t .. ':' .. u
  local hp = hh .. '|'
  local cur = redis.call('HMGET', ck, hp .. 'a', hp .. 'c', hp .. 'u')
  local a0, c0, apps = num(cur[1]), num(cur[2]), num(cur[3])
  local a1 = bor(a0, amask)
  local c1 = c0
  if conn == 1 then c1 = 1 end
  touch(t, u, hh)
  local changed = 0
  if a1 ~= a0 then
    redis.call('HSET', ck, hp .. 'a', a1)
    changed = 1
  end
  if c1 ~= c0 then
    redis.call('HSET', ck, hp .. 'c', 1)
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
      kind_delta(t, u, hh, i, e1 - e0)
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
  local d = pop(p1) - pop(p0)
  redis.call('HINCRBY', P .. 'g:' .. t .. ':x', 'p|' .. key, d)
  capped(hp .. 'p|' .. key .. '|' .. u, P .. 'g:all:x', 'p|' .. key, d)
  if p0 == 0 then
    setbit48(P .. 'g:' .. t .. ':x', 'r|' .. key .. '|' .. u, hh)
    setbit48(P .. 'g:all:x', 'r|' .. key .. '|' .. u, hh)
  end
  local cur = redis.call('HMGET', ck, hp .. 'a', hp .. 'c', hp .. 'u')
  local a, c, apps0 = num(cur[1]), num(cur[2]), num(cur[3])
  local apps1 = bor(apps0, mask)
  if apps1 ~= apps0 then
    redis.call('HSET', ck, hp .. 'u', apps1)
    usage_delta(t, u, hh, usage_of(a, c, apps0), usage_of(a, c, apps1))
  end
  return 1
end

-- Latency bins are JSON maps per (key, user).  Samples of one call are summed
-- here first and each map is decoded and re-encoded once per call, not once
-- per sample (that re-encoding dominated the latency path).
local pending_bins = {}

local function add_bin(key, field, bin)
  local per_key = pending_bins[key]
  if not per_key then
    per_key = {}
    pending_bins[key] = per_key
  end
  local adds = per_key[field]
  if not adds then
    adds = {}
    per_key[field] = adds
  end
  local b = tostring(bin)
  adds[b] = (adds[b] or 0) + 1
end

local function flush_bins()
  for key, fields in pairs(pending_bins) do
    for field, adds in pairs(fields) do
      local raw = redis.call('HGET', key, field)
      local bins = {}
      if raw then bins = cjson.decode(raw) end
      for b, n in pairs(adds) do bins[b] = (bins[b] or 0) + n end
      redis.call('HSET', key, field, cjson.encode(bins))
    end
  end
end

local function apply_latency(op)
  local t, u, hh, digest, bin = op[2], op[3], op[4], op[5], op[6]
  if redis.call('HSETNX', P .. 'l:' .. t .. ':' .. u, hh .. '|' .. digest, bin) == 0 then
    return 0
  end
  touch(t, u, hh)
  add_bin(P .. 'g:' .. t .. ':l', u, bin)
  add_bin(P .. 'g:all:l', u, bin)
  return 1
end

local builds_changed = false

-- Builds of one (template, workspace, build_number): the newest report wins
-- (greatest time, then greatest id), so redelivery in any order converges.
local function apply_build(op)
  local field, time_us, id, payload = op[2], op[3], op[4], op[5]
  local raw = redis.call('HGET', P .. 'builds', field)
  if raw then
    local cur = cjson.decode(raw)
    local ct, nt = tonumber(cur.t), tonumber(time_us)
    if ct > nt or (ct == nt and cur.i >= id) then return 0 end
  end
  redis.call('HSET', P .. 'builds', field, cjson.encode({t = time_us, i = id, p = payload}))
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
if changed > 0 then redis.call('INCR', P .. 'ver') end
-- Builds have a version of their own: readers re-list a day's builds only when it moves.
if builds_changed then redis.call('INCR', P .. 'bver') end
return changed
