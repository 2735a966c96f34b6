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

for _, t in ipairs(redis.call('SMEMBERS', P .. 'tpls')) do
  for _, part in ipairs({'a', 'x', 'l'}) do
    drop(P .. 'g:' .. t .. ':' .. part)
  end
end
drop(P .. 'g:all:m')
drop(P .. 'g:all:x')
local ut = redis.call('HGETALL', P .. 'ut')
for i = 1, #ut, 2 do
  local u = ut[i]
  for t in string.gmatch(ut[i + 1], '[^|]+') do
    drop(P .. 'c:' .. t .. ':' .. u)
    local guards = {}
    for hh = 0, 47 do guards[hh + 1] = P .. 'l:' .. t .. ':' .. u .. ':' .. hh end
    removed = removed + redis.call('UNLINK', unpack(guards))
  end
end
for _, suffix in ipairs({'tpls', 'ut', 'builds', 'pdefs'}) do
  drop(P .. suffix)
end
redis.call('INCR', P .. 'ver')
redis.call('INCR', P .. 'bver')
return removed
