-- Newest-wins upserts of user profiles and the app catalogue (any age, any order).
--
-- KEYS[1]  users hash   KEYS[2]  app catalogue hash   KEYS[3]  catalogue version
--          (all tagged {meta})
-- ARGV[1]  JSON array of {"u"|"a", field, time_us, id, name, icon_or_avatar}
--
-- The stored entry is replaced only by a strictly newer (time, then id
-- bytewise) one, so redelivery and reordering converge to the same state.
local ops = cjson.decode(ARGV[1])
local changed = 0
for _, op in ipairs(ops) do
  local key = KEYS[1]
  if op[1] == 'a' then key = KEYS[2] end
  local field, time_us, id = op[2], op[3], op[4]
  local raw = redis.call('HGET', key, field)
  local newer = true
  if raw then
    local cur = cjson.decode(raw)
    local ct, nt = tonumber(cur.t), tonumber(time_us)
    newer = nt > ct or (nt == ct and id > cur.i)
  end
  if newer then
    redis.call('HSET', key, field, cjson.encode({t = time_us, i = id, n = op[5], c = op[6]}))
    changed = changed + 1
    if op[1] == 'a' then redis.call('INCR', KEYS[3]) end
  end
end
return changed
