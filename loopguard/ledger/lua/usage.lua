-- Reclaim expired reservations of each key and return its totals.
-- Needs reclaim.lua prepended. KEYS: triples (hash, zset, zset) as in reserve.lua. ARGV: now.
-- Returns, per key: spent_n, res_n, spent_t, res_t, number of live reservations.
local now = ARGV[1]
local out = {}
for i = 1, #KEYS / 3 do
  local h, z, d = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  reclaim(h, z, d, now)
  local v = redis.call('HMGET', h, 'spent_n', 'res_n', 'spent_t', 'res_t')
  table.insert(out, v[1] or '0')
  table.insert(out, v[2] or '0')
  table.insert(out, v[3] or '0')
  table.insert(out, v[4] or '0')
  table.insert(out, redis.call('ZCARD', z))
end
return out
