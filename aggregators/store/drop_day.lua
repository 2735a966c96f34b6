-- Remove ONE bucket of ONE UTC day's rollups (retention), atomically.
--
-- KEYS[1]  the bucket's template set (routing: every key of a bucket carries the
--          same {d<day>} or {d<day>:<bucket>} hash tag, so the call stays in one slot)
-- KEYS[2]  the bucket's user templates
-- KEYS[3..] every other key of the bucket, derived by the caller from those two as it
--          read them (aggregators/store/keys.py: bucket_keys): every key a script
--          touches is declared, for cluster routing and key ACLs
-- ARGV[1]  the bucket's key prefix (keys.py: day_prefix)
--
-- A template or user added since the caller read the two would leave keys behind that
-- nothing names any more: the call then removes nothing and returns -1, and the caller
-- reads again.  Every declared key is unlinked but the two version counters, which move
-- on instead: a reader holding a frame of the old day must not take it for data written
-- after the drop.  Shared frames (f:*) are left to their TTL.  Returns the number of keys
-- removed.

local P = ARGV[1]
local declared = {}
for _, k in ipairs(KEYS) do declared[k] = true end

for _, t in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not declared[P .. 'g:' .. t .. ':a'] then return -1 end
end
local ut = redis.call('HGETALL', KEYS[2])
for i = 1, #ut, 2 do
  for t in string.gmatch(ut[i + 1], '[^|]+') do
    if not declared[P .. 'c:' .. t .. ':' .. ut[i]] then return -1 end
  end
end

local versions = {[P .. 'ver'] = true, [P .. 'bver'] = true}
local removed = 0
for _, k in ipairs(KEYS) do
  if versions[k] then
    redis.call('INCR', k)
  else
    removed = removed + redis.call('UNLINK', k)
  end
end
return removed
