-- Reserve an amount against every budget key, all or none, in one atomic step.
-- KEYS: pairs (hash, zset) per budget key. The hash holds spent_n, spent_t (spent nano-USD and
--   tokens), res_n, res_t (sums of live reservations) and one field "r:<rid>" = "<n>:<t>" per
--   reservation; the zset scores each reservation id by its expiry.
-- ARGV: now, expiry, rid, then per key: usd_n, tokens, max_usd_n (-1 = none),
--   max_tokens (-1 = none), key_expire_at (0 = never).
-- Needs reclaim.lua prepended. Returns {1, then per key: spent_n + res_n, spent_t + res_t
-- (this reservation included)} or {0, index of the first key over its limit, spent_n, res_n,
-- spent_t, res_t}.
-- Amounts travel as decimal strings and are added with HINCRBY so that Lua's doubles never
-- format a large integer in exponent notation.
local now = ARGV[1]
local expiry = ARGV[2]
local rid = ARGV[3]
local n = #KEYS / 2

for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  reclaim(h, z, now)
  local a = 3 + (i - 1) * 5
  local u, t = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local mu, mt = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local v = redis.call('HMGET', h, 'spent_n', 'res_n', 'spent_t', 'res_t')
  local sn, rn = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  local st, rt = tonumber(v[3] or '0'), tonumber(v[4] or '0')
  if (mu >= 0 and sn + rn + u > mu) or (mt >= 0 and st + rt + t > mt) then
    return {0, i, v[1] or '0', v[2] or '0', v[3] or '0', v[4] or '0'}
  end
end

local used = {1}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 3 + (i - 1) * 5
  local u, t = ARGV[a + 1], ARGV[a + 2]
  local rn = redis.call('HINCRBY', h, 'res_n', u)
  local rt = redis.call('HINCRBY', h, 'res_t', t)
  local v = redis.call('HMGET', h, 'spent_n', 'spent_t')
  table.insert(used, tonumber(v[1] or '0') + rn)
  table.insert(used, tonumber(v[2] or '0') + rt)
  redis.call('HSET', h, 'r:' .. rid, u .. ':' .. t)
  redis.call('ZADD', z, expiry, rid)
  local kx = ARGV[a + 5]
  if kx ~= '0' then
    -- the key names its window, so its expiry is the same on every call
    redis.call('EXPIREAT', h, kx)
    redis.call('EXPIREAT', z, kx)
  end
end
return used
