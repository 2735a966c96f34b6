-- Newest-wins upserts of user profiles, the app catalogue and template names
-- (any age, any order).
--
-- KEYS[1]  users hash       KEYS[2]  app catalogue hash
-- KEYS[3]  catalogue version           KEYS[4]  users version
-- KEYS[5]  template names hash         KEYS[6]  template names version (all tagged {meta})
-- ARGV[1]  JSON array of {"u"|"a"|"t", field, time_us, id, name, icon_or_avatar_or_org}
--
-- The stored entry is replaced only by a strictly newer (time, then id
-- bytewise) one, so redelivery and reordering converge to the same state.
-- The versions move only when what readers render (name, icon or avatar)
-- changes, not on every newer report, so readers' caches stay warm.
local ops = cjson.decode(ARGV[1])
local changed = 0
for _, op in ipairs(ops) do
  local key, version = KEYS[1], KEYS[4]
  if op[1] == 'a' then key, version = KEYS[2], KEYS[3] end
  if op[1] == 't' then key, version = KEYS[5], KEYS[6] end
  local field, time_us, id = op[2], op[3], op[4]
  local raw = redis.call('HGET', key, field)
  local newer, shown = true, true
  if raw then
    local cur = cjson.decode(raw)
    local ct, nt = tonumber(cur.t), tonumber(time_us)
    newer = nt > ct or (nt == ct and id > cur.i)
    shown = cur.n ~= op[5] or cur.c ~= op[6]
  end
  if newer then
    redis.call('HSET', key, field, cjson.encode({t = time_us, i = id, n = op[5], c = op[6]}))
    changed = changed + 1
    if shown then redis.call('INCR', version) end
  end
end
return changed
