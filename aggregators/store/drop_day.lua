-- Remove ONE UTC day's rollups (retention), atomically.
--
-- KEYS[1]  the day's template set (routing key: every key of the day carries
--          the same {d<day>} hash tag, so the call stays in one cluster slot)
-- ARGV[1]  the day's key prefix (aggregators/store/keys.py: day_prefix)
--
-- Derives the day's keys the way rollup.lua names them and unlinks them all
-- but the two version counters, which move on instead: a reader holding a
-- frame of the old day must not take it for data written after the drop.
-- Shared frames (f:*) are left to their TTL.  Returns the number of keys removed.

local P = ARGV[1]
local removed = 0
local function drop(key)
  removed = removed + redis.call('UNLINK', key)
end

local templates = redis.call('SMEMBERS', P .. 'tpls')
table.insert(templates, 'all')
for _, t in ipairs(templates) do
  for _, part in ipairs({'a', 'm', 'x', 'l'}) do
    drop(P .. 'g:' .. t .. ':' .. part)
  end
end
for _, member in ipairs(redis.call('SMEMBERS', P .. 'cells')) do
  local sep = string.find(member, '|', 1, true)
  local t, u = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  drop(P .. 'c:' .. t .. ':' .. u)
  drop(P .. 'l:' .. t .. ':' .. u)
end
for _, suffix in ipairs({'tpls', 'cells', 'sum', 'builds'}) do
  drop(P .. suffix)
end
redis.call('INCR', P .. 'ver')
redis.call('INCR', P .. 'bver')
return removed
