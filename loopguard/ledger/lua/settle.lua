-- End a reservation on every key and add what was really spent (zero for a release).
-- KEYS: pairs (hash, zset) per budget key, as in reserve.lua.
-- Needs reclaim.lua prepended.
-- ARGV: rid, then per key: usd_n, tokens, key_expire_at (0 = never).
-- A reservation that already expired (reclaimed) is no error: the spend is still added, so
-- nothing that was really spent is ever lost.
local rid = ARGV[1]
local n = #KEYS / 2
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  unhold(h, rid)
  redis.call('ZREM', z, rid)
  local a = 1 + (i - 1) * 3
  local u, t = ARGV[a + 1], ARGV[a + 2]
  if u ~= '0' or redis.call('HEXISTS', h, 'spent_n') == 0 then
    redis.call('HINCRBY', h, 'spent_n', u)
  end
  if t ~= '0' or redis.call('HEXISTS', h, 'spent_t') == 0 then
    redis.call('HINCRBY', h, 'spent_t', t)
  end
  local kx = ARGV[a + 3]
  if kx ~= '0' then redis.call('EXPIREAT', h, kx) end
end
return 1
