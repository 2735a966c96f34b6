-- Apply one batch of pre-aggregated operations to the rollups of ONE bucket of
-- ONE UTC day (the users whose id hashes to it; builds go with bucket 0).
--
-- KEYS     every key the call may touch (aggregators/store/keys.py: rollup_keys),
--          the bucket's template set first (the routing key; all carry the
--          bucket's hash tag, so the whole call stays in one cluster slot): the
--          bucket's sets, version and all-scope aggregates, each operation's
--          template aggregates, the cells of each operation's user in every
--          template of the day the caller knows of, each latency sample's guard
--          set and, with builds, the builds, their definitions and version.  A
--          user's cells in templates the caller was not told of are read for the
--          caps: a call that meets one changes nothing and returns
--          {'missing', user, template, ...}, and the caller calls again with them.
-- ARGV[1]  the bucket's key prefix (aggregators/store/keys.py: day_prefix)
-- ARGV[3]  dedupe horizon in seconds: a latency guard hash expires this long
--          after its last write
-- ARGV[2]  JSON array of operations:
--   {"s", t, u, hh, agent_mask, connected, k0, k1, k2, k3, k4}  session minutes
--   {"p", t, u, hh, app_key, minute_mask}                       app minutes
--   {"l", t, u, hh, id_digest, bin}                             one latency sample
--   {"b", field, time_us, id, head, {{digest, definition, value}}}  one build
--        (upsert), stored as the JSON [time_us, id, definition number, value, ...]:
--        head is its text up to the id, each value a JSON string
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
local byte, char, sub = string.byte, string.char, string.sub
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

-- Cell hash "c:<t>:<u>" (aggregators/store/codec.py reads it): field "<hh>"
-- holds the half-hour's masks as text, then "/" and its packed latency bins
-- when it has samples; field "<hh>|<app key>" one app's minute mask; field
-- "<hh>l" the bins instead when both would not fit in HASH_VALUE bytes (the
-- server's default hash-max-listpack-value: one longer value would turn the
-- whole hash from a listpack into a hash table, several times its size).
--
-- Masks text: "-" when no report was connected, then the tokens of the agent
-- minutes, builtin kinds 0-4 and the union of app minutes, trailing "."
-- tokens left out (so "" is a half-hour with latency samples only).  A token
-- is "." (no minute), "*" (all 30), "=" (the agent minutes: kinds and apps
-- mostly are), an upper then a lower letter for one run of minutes
-- ("A".."^" first, "a".."~" last), or "#" and 6 base-32 digits (least
-- significant first) for any other mask.  A whole working half-hour, VS Code
-- and SSH connected, is "*=..=" instead of four decimal fields.
local HASH_VALUE = 64
local FULL = 1073741823 -- 2^30 - 1
local DOT, STAR, SAME, HASH, DASH, SLASH = 46, 42, 61, 35, 45, 47

local function mask_token(m, agent)
  if m == 0 then return '.' end
  if m == agent then return '=' end
  if m == FULL then return '*' end
  local s, x = 0, m
  while band(x, 1) == 0 do
    x = x / 2
    s = s + 1
  end
  if band(x, x + 1) == 0 then return char(65 + s, 96 + s + pop(x)) end
  local out = {'#'}
  for i = 2, 7 do
    local d = m % 32
    out[i] = char(d < 10 and 48 + d or 87 + d)
    m = (m - d) / 32
  end
  return table.concat(out)
end

local function read_token(s, i, agent)
  local c = byte(s, i)
  if c == DOT then return 0, i + 1 end
  if c == STAR then return FULL, i + 1 end
  if c == SAME then return agent, i + 1 end
  if c == HASH then
    local m, mul = 0, 1
    for j = i + 1, i + 6 do
      local d = byte(s, j)
      m = m + (d >= 97 and d - 87 or d - 48) * mul
      mul = mul * 32
    end
    return m, i + 7
  end
  return 2 ^ (byte(s, i + 1) - 96) - 2 ^ (c - 65), i + 2
end

-- One (cell, half-hour)'s state, read once per call and written back once at
-- its end (flush_cells): a = agent minutes, c = connected (0/1), k[0..4]
-- builtin kinds, u = union of app minutes, bins = packed text or nil.
local states = {}

local function state_of(ck, hh)
  local id = ck .. '|' .. hh
  local st = states[id]
  if st then return st end
  st = {ck = ck, hh = hh, a = 0, c = 0, k = {[0] = 0, 0, 0, 0, 0}, u = 0}
  local cur = redis.call('HMGET', ck, hh, hh .. 'l')
  local raw = cur[1]
  if raw then
    local cut = string.find(raw, '/', 1, true)
    local m = raw
    if cut then
      m = sub(raw, 1, cut - 1)
      st.bins = sub(raw, cut + 1)
    end
    local n, i = #m, 1
    if n > 0 then
      if byte(m, 1) == DASH then i = 2 else st.c = 1 end
      if i <= n then st.a, i = read_token(m, i, 0) end
      for j = 0, 4 do
        if i <= n then st.k[j], i = read_token(m, i, st.a) end
      end
      if i <= n then st.u = read_token(m, i, st.a) end
    end
  end
  if cur[2] then
    st.bins = cur[2]
    st.spilled = true
  end
  states[id] = st
  return st
end

local function masks_text(st)
  local toks = {mask_token(st.a, -1)}
  for j = 0, 4 do toks[j + 2] = mask_token(st.k[j], st.a) end
  toks[7] = mask_token(st.u, st.a)
  local last = 7
  while last > 0 and toks[last] == '.' do last = last - 1 end
  local text = table.concat(toks, '', 1, last)
  if st.c == 0 then
    if text == '' then return '' end
    return '-' .. text
  end
  if text == '' then return '.' end
  return text
end

local function flush_cells()
  for _, st in pairs(states) do
    if st.dirty then
      local m = masks_text(st)
      local bins = st.bins
      if bins == nil or bins == '' then
        redis.call('HSET', st.ck, st.hh, m)
      elseif #m + 1 + #bins <= HASH_VALUE then
        redis.call('HSET', st.ck, st.hh, m .. '/' .. bins)
        if st.spilled then redis.call('HDEL', st.ck, st.hh .. 'l') end
      else
        redis.call('HSET', st.ck, st.hh, m, st.hh .. 'l', bins)
      end
    end
  end
end

local function usage_in(hh)
  return function(ck)
    local st = state_of(ck, hh)
    return usage_of(st.a, st.c, st.u)
  end
end

-- Day usage of a template, "g:<t>:a": user -> its active half-hours (48-bit mask) and
-- usage minutes as ONE decimal integer, mask * 10^4 + minutes (below 2^63, so the
-- server keeps it as an 8-byte integer in the listpack; one field per user instead of one
-- in each of two hashes, a user id being most of an entry).  Doubles cannot hold the
-- product exactly, so it is read and written as text: the last 4 digits are the minutes.
-- A row is read once per call and written back once at its end (flush_usage).  The all
-- scope keeps only the capped minutes ("g:all:m"): readers OR the templates' masks.
local usage_rows = {}

local function usage_row(t, u)
  local key = P .. 'g:' .. t .. ':a'
  local rows = usage_rows[key]
  if not rows then
    rows = {}
    usage_rows[key] = rows
  end
  local row = rows[u]
  if not row then
    local raw = redis.call('HGET', key, u)
    if raw then
      row = {mask = tonumber(sub(raw, 1, -5)), minutes = tonumber(sub(raw, -4))}
    else
      row = {mask = 0, minutes = 0}
    end
    rows[u] = row
  end
  return row
end

local function flush_usage()
  for key, rows in pairs(usage_rows) do
    for u, row in pairs(rows) do
      redis.call('HSET', key, u, string.format('%.0f%04d', row.mask, row.minutes))
    end
  end
end

local function usage_delta(t, u, hh, old, new)
  local d = new - old
  if d == 0 then return end
  local row = usage_row(t, u)
  row.minutes = row.minutes + d
  if old == 0 then
    local b = 2 ^ hh
    if math.floor(row.mask / b) % 2 == 0 then row.mask = row.mask + b end
  end
  capped(t, u, P .. 'g:all:m', u, old, new, usage_in(hh))
end

local function kind_in(hh, i)
  return function(ck)
    local st = state_of(ck, hh)
    if st.c == 0 then return 0 end
    return pop(st.k[i])
  end
end

local function kind_delta(t, u, hh, i, old, new)
  if new == old then return end
  redis.call('HINCRBY', P .. 'g:' .. t .. ':x', 'k|' .. i, new - old)
  capped(t, u, P .. 'g:all:x', 'k|' .. i, old, new, kind_in(hh, i))
end

-- An app's minutes of one half-hour (field "<hh>|<key>", one mask token).
local function app_mask(ck, f)
  local raw = redis.call('HGET', ck, f)
  if not raw then return 0 end
  return (read_token(raw, 1, 0))
end

local function app_in(hh, key)
  return function(ck)
    return pop(app_mask(ck, hh .. '|' .. key))
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
  local st = state_of(P .. 'c:' .. t .. ':' .. u, hh)
  local a0, c0 = st.a, st.c
  local a1 = bor(a0, amask)
  local c1 = c0
  if conn == 1 then c1 = 1 end
  touch(t, u, hh)
  local changed = 0
  if a1 ~= a0 or c1 ~= c0 then
    st.a, st.c, st.dirty = a1, c1, true
    changed = 1
  end
  for i = 0, 4 do
    local km = op[7 + i]
    if km ~= 0 or c1 ~= c0 then
      local k0 = st.k[i]
      local k1 = bor(k0, km)
      if k1 ~= k0 then
        st.k[i], st.dirty = k1, true
        changed = 1
      end
      local e0, e1 = 0, 0
      if c0 == 1 then e0 = pop(k0) end
      if c1 == 1 then e1 = pop(k1) end
      kind_delta(t, u, hh, i, e0, e1)
    end
  end
  usage_delta(t, u, hh, usage_of(a0, c0, st.u), usage_of(a1, c1, st.u))
  return changed
end

local function apply_app(op)
  local t, u, hh, key, mask = op[2], op[3], op[4], op[5], op[6]
  local ck = P .. 'c:' .. t .. ':' .. u
  local f = hh .. '|' .. key
  local p0 = app_mask(ck, f)
  local p1 = bor(p0, mask)
  if p1 == p0 then return 0 end
  touch(t, u, hh)
  redis.call('HSET', ck, f, mask_token(p1, -1))
  local n0, n1 = pop(p0), pop(p1)
  redis.call('HINCRBY', P .. 'g:' .. t .. ':x', 'p|' .. key, n1 - n0)
  capped(t, u, P .. 'g:all:x', 'p|' .. key, n0, n1, app_in(hh, key))
  if p0 == 0 then
    -- Run masks are never capped: readers OR the templates' for the all scope.
    setbit48(P .. 'g:' .. t .. ':x', 'r|' .. key .. '|' .. u, hh)
  end
  local st = state_of(ck, hh)
  local apps0 = st.u
  local apps1 = bor(apps0, mask)
  if apps1 ~= apps0 then
    st.u, st.dirty = apps1, true
    usage_delta(t, u, hh, usage_of(st.a, st.c, apps0), usage_of(st.a, st.c, apps1))
  end
  return 1
end

-- Latency sketch bins, summed per (template, user) in the day aggregate
-- "g:<t>:l" (latency is never capped, so readers sum templates: no "all"
-- copy) and per half-hour in the cell.  Text, because the API's client
-- decodes replies as UTF-8.  Samples of one call are summed here first and
-- each value is decoded and re-encoded once per call, not once per sample.
local pending_day, pending_cell = {}, {}

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

local function sorted_bins(bins)
  local order = {}
  for b in pairs(bins) do order[#order + 1] = b end
  table.sort(order)
  return order
end

-- Half-hour bins (some 60 samples over a few dozen bins, mostly a gap of 1-3
-- to the previous bin and a count of 1-3) in 88 symbols, each one character
-- ('&'..'~' without the backslash): 0-15 a base-16 digit that ends a varint,
-- 16-31 one that continues it (least significant first); 32-51 one entry of
-- gap 1-5 and count 1-4; 52-87 two entries, both among the six commonest
-- (gap, count) pairs of COMMON.  The first entry is a varint of the zigzagged
-- bin and one of the count, any other entry a varint of the gap and one of
-- the count.  ~30 characters for a half-hour where day packing takes ~40.
local COMMON = {{1, 1}, {1, 2}, {2, 1}, {1, 3}, {3, 1}, {2, 2}}
local common_of = {}  -- gap * 64 + count -> index 0-5 in COMMON
for i, e in ipairs(COMMON) do common_of[e[1] * 64 + e[2]] = i - 1 end

local SYM = {}
for i = 0, 87 do SYM[i] = char(i < 54 and 38 + i or 39 + i) end

local function put_hex_varint(buf, v)
  while v >= 16 do
    buf[#buf + 1] = SYM[16 + v % 16]
    v = math.floor(v / 16)
  end
  buf[#buf + 1] = SYM[v]
end

local function pack_cell_bins(bins)
  local order = sorted_bins(bins)
  local buf = {}
  local b0 = order[1]
  if b0 >= 0 then put_hex_varint(buf, 2 * b0) else put_hex_varint(buf, -2 * b0 - 1) end
  put_hex_varint(buf, bins[b0])
  local i, n = 2, #order
  while i <= n do
    local gap, count = order[i] - order[i - 1], bins[order[i]]
    -- (COMMON counts are below 64, and a larger one would alias another gap's key)
    local ci, cj
    if count < 64 then ci = common_of[gap * 64 + count] end
    if ci and i < n and bins[order[i + 1]] < 64 then
      cj = common_of[(order[i + 1] - order[i]) * 64 + bins[order[i + 1]]]
    end
    if cj then
      buf[#buf + 1] = SYM[52 + ci * 6 + cj]
      i = i + 2
    else
      if gap <= 5 and count <= 4 then
        buf[#buf + 1] = SYM[32 + (gap - 1) * 4 + count - 1]
      else
        put_hex_varint(buf, gap)
        put_hex_varint(buf, count)
      end
      i = i + 1
    end
  end
  return table.concat(buf)
end

-- Adds decoded (zigzagged first bin, count, gap, count, ...) values to bins.
local function add_entries(values, bins)
  local prev
  for j = 1, #values, 2 do
    local d, bin = values[j]
    if j == 1 then
      if d % 2 == 0 then bin = d / 2 else bin = -(d + 1) / 2 end
    else
      bin = prev + d
    end
    bins[bin] = (bins[bin] or 0) + values[j + 1]
    prev = bin
  end
end

local function unpack_cell_bins(s, bins)
  local values = {}
  local v, mul = 0, 1
  for i = 1, #s do
    local c = byte(s, i)
    local x = c - 38
    if c > 92 then x = x - 1 end
    if x < 16 then
      values[#values + 1] = v + x * mul
      v, mul = 0, 1
    elseif x < 32 then
      v = v + (x - 16) * mul
      mul = mul * 16
    elseif x < 52 then
      x = x - 32
      values[#values + 1] = math.floor(x / 4) + 1
      values[#values + 1] = x % 4 + 1
    else
      x = x - 52
      local e1, e2 = COMMON[math.floor(x / 6) + 1], COMMON[x % 6 + 1]
      values[#values + 1] = e1[1]
      values[#values + 1] = e1[2]
      values[#values + 1] = e2[1]
      values[#values + 1] = e2[2]
    end
  end
  add_entries(values, bins)
end

-- Day bins (a user's day in one template: some 100 entries, mostly next to each other,
-- counts up to ~40 at a sample every 30 s) in the same 88 symbols: 0-7 an octal digit that
-- ends a varint, 8-15 one that continues it (least significant first), 16-87 one whole
-- entry of DAY_ENTRIES (gap to the previous bin, count).  The first entry is a varint of
-- the zigzagged bin and one of the count, any other one symbol or a varint of the gap and
-- one of the count.  ~100 characters for a working day, where base-32 varints of each gap
-- and count take ~160 (and make the day aggregate the second largest family after cells).
local DAY_ENTRIES = {}
for _, run in ipairs({{1, 39}, {2, 6}, {3, 4}, {4, 3}}) do
  for c = 1, run[2] do DAY_ENTRIES[#DAY_ENTRIES + 1] = {run[1], c} end
end
for g = 5, 24 do DAY_ENTRIES[#DAY_ENTRIES + 1] = {g, 1} end
local day_entry_of = {}  -- gap * 64 + count (count < 64) -> symbol 16-87
for i, e in ipairs(DAY_ENTRIES) do day_entry_of[e[1] * 64 + e[2]] = 15 + i end

local SYM_OF = {}  -- byte -> symbol
for i = 0, 87 do SYM_OF[byte(SYM[i])] = i end

local function put_octal(buf, v)
  while v >= 8 do
    buf[#buf + 1] = SYM[8 + v % 8]
    v = math.floor(v / 8)
  end
  buf[#buf + 1] = SYM[v]
end

local function pack_day_bins(bins)
  local buf, prev = {}, nil
  for _, b in ipairs(sorted_bins(bins)) do
    local count = bins[b]
    local e
    if prev ~= nil and count < 64 then e = day_entry_of[(b - prev) * 64 + count] end
    if e then
      buf[#buf + 1] = SYM[e]
    else
      if prev ~= nil then
        put_octal(buf, b - prev)
      elseif b >= 0 then
        put_octal(buf, 2 * b)
      else
        put_octal(buf, -2 * b - 1)
      end
      put_octal(buf, count)
    end
    prev = b
  end
  return table.concat(buf)
end

local function unpack_day_bins(s, bins)
  local values = {}
  local v, mul = 0, 1
  for i = 1, #s do
    local x = SYM_OF[byte(s, i)]
    if x < 8 then
      values[#values + 1] = v + x * mul
      v, mul = 0, 1
    elseif x < 16 then
      v = v + (x - 8) * mul
      mul = mul * 8
    else
      local e = DAY_ENTRIES[x - 15]
      values[#values + 1] = e[1]
      values[#values + 1] = e[2]
    end
  end
  add_entries(values, bins)
end

local function flush_bins()
  for key, fields in pairs(pending_day) do
    for field, adds in pairs(fields) do
      local raw = redis.call('HGET', key, field)
      local bins = {}
      if raw then unpack_day_bins(raw, bins) end
      for b, n in pairs(adds) do bins[b] = (bins[b] or 0) + n end
      redis.call('HSET', key, field, pack_day_bins(bins))
    end
  end
  for ck, fields in pairs(pending_cell) do
    for hh, adds in pairs(fields) do
      local st = state_of(ck, hh)
      local bins = {}
      if st.bins then unpack_cell_bins(st.bins, bins) end
      for b, n in pairs(adds) do bins[b] = (bins[b] or 0) + n end
      st.bins, st.dirty = pack_cell_bins(bins), true
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
  add_bin(pending_cell, P .. 'c:' .. t .. ':' .. u, hh, bin)
  add_bin(pending_day, P .. 'g:' .. t .. ':l', u, bin)
  return 1
end

local builds_changed = false

-- Builds of one (template, workspace, build_number): the newest report wins
-- (greatest time, then greatest id), so redelivery in any order converges.
-- A parameter's definition (name, texts, options) is kept once per day in
-- hash "pdefs" under a number ("#<digest>" -> number, "#" the last number
-- given), and the stored build names it by that number: builds of a day
-- mostly share a few definitions, and a number is shorter than a digest.
local function apply_build(op)
  local field, time_us, id, head, params = op[2], op[3], op[4], op[5], op[6]
  local raw = redis.call('HGET', P .. 'builds', field)
  if raw then
    local ok, cur = pcall(cjson.decode, raw)
    -- An unreadable stored build (never written by this script) is replaced.
    if ok and type(cur) == 'table' and type(cur[1]) == 'number' then
      local ct, nt = cur[1], tonumber(time_us)
      if ct > nt or (ct == nt and tostring(cur[2]) >= id) then return 0 end
    end
  end
  local defs = P .. 'pdefs'
  local buf = {head}
  for _, p in ipairs(params) do
    local dk = '#' .. p[1]
    local n = redis.call('HGET', defs, dk)
    if not n then
      n = redis.call('HINCRBY', defs, '#', 1)
      redis.call('HSET', defs, n, p[2], dk, n)
    end
    buf[#buf + 1] = ',' .. n .. ',' .. p[3]
  end
  buf[#buf + 1] = ']'
  redis.call('HSET', P .. 'builds', field, table.concat(buf))
  builds_changed = true
  return 1
end

-- Every key touched must be declared (Redis's rule for scripts): check the one kind the
-- caller cannot know for sure, before anything is written.
local declared = {}
for _, k in ipairs(KEYS) do declared[k] = true end
local missing, named = {'missing'}, {}
for _, op in ipairs(ops) do
  if op[1] ~= 'b' then
    local u = op[3]
    for _, x in ipairs(templates_of(u)) do
      local ck = P .. 'c:' .. x .. ':' .. u
      if not declared[ck] and not named[ck] then
        named[ck] = true
        missing[#missing + 1] = u
        missing[#missing + 1] = x
      end
    end
  end
end
if #missing > 1 then return missing end

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
flush_cells()
flush_usage()
for gk in pairs(guarded) do redis.call('EXPIRE', gk, HORIZON) end
if changed > 0 then redis.call('INCR', P .. 'ver') end
-- Builds have a version of their own: readers re-list a day's builds only when it moves.
if builds_changed then redis.call('INCR', P .. 'bver') end
return changed
