-- Reserve an amount against every budget key, all or none, in one atomic step.
-- KEYS: per budget key a quadruple (hash, zset of expiries, zset of ended reservations, its
--   trip key), as described in reclaim.lua, then the other trip keys to check (agent, tenant).
--   The hash holds spent_n, spent_t (spent nano-USD and tokens), res_n, res_t (sums of live
--   reservations) and one field "r:<rid>" = "<n>:<t>" per reservation. A trip key is a hash
--   (reason, at, until, auto) that refuses every reservation naming it while it exists.
-- ARGV: now, expiry, rid, n (budget keys), then per key: usd_n, tokens, max_usd_n (-1 = none),
--   max_tokens (-1 = none), key_expire_at (0 = never), trip_until (0 = no automatic trip; -1
--   = until untripped), the budget key's name (for the trip's reason).
-- Needs reclaim.lua prepended. Returns {1, then per key: spent_n + res_n, spent_t + res_t
-- (this reservation included)}, or {0, index of the first key over its limit, spent_n, res_n,
-- spent_t, res_t}, or {2, the trip key, reason, at, until, auto} when a trip key is set.
-- Idempotent per rid: a key that already holds `rid`, or on which `rid` has ended (a release
-- sent after this reserve timed out on the client can arrive first), is left as it is.
-- Amounts travel as decimal strings and are added with HINCRBY so that Lua's doubles never
-- format a large integer in exponent notation.
local now = ARGV[1]
local expiry = ARGV[2]
local rid = ARGV[3]
local n = tonumber(ARGV[4])
local W = 7 -- ARGV per budget key

for j = 1, #KEYS do
  if j % 4 == 0 or j > 4 * n then
    local set = redis.call('HMGET', KEYS[j], 'reason', 'at', 'until', 'auto')
    if set[1] then return {2, KEYS[j], set[1], set[2] or '0', set[3] or '', set[4] or '0'} end
  end
end

local skip = {}
for i = 1, n do
  local h, z, d = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  reclaim(h, z, d, now)
  skip[i] = ended(d, rid) or redis.call('HEXISTS', h, 'r:' .. rid) == 1
  local a = 4 + (i - 1) * W
  local u, t = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local mu, mt = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local v = redis.call('HMGET', h, 'spent_n', 'res_n', 'spent_t', 'res_t')
  local sn, rn = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  local st, rt = tonumber(v[3] or '0'), tonumber(v[4] or '0')
  if not skip[i] and ((mu >= 0 and sn + rn + u > mu) or (mt >= 0 and st + rt + t > mt)) then
    local upto = ARGV[a + 6]
    if upto ~= '0' then
      local tk = KEYS[4 * i]
      redis.call('HSET', tk, 'reason', 'budget exhausted on ' .. ARGV[a + 7], 'at', now, 'auto', '1')
      if upto ~= '-1' then
        redis.call('HSET', tk, 'until', upto)
        redis.call('EXPIREAT', tk, math.ceil(tonumber(upto)))
      end
    end
    return {0, i, v[1] or '0', v[2] or '0', v[3] or '0', v[4] or '0'}
  end
end

local used = {1}
for i = 1, n do
  local h, z, d = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1]
  local a = 4 + (i - 1) * W
  if not skip[i] then
    local u, t = ARGV[a + 1], ARGV[a + 2]
    redis.call('HINCRBY', h, 'res_n', u)
    redis.call('HINCRBY', h, 'res_t', t)
    redis.call('HSET', h, 'r:' .. rid, u .. ':' .. t)
    redis.call('ZADD', z, expiry, rid)
  end
  local v = redis.call('HMGET', h, 'spent_n', 'res_n', 'spent_t', 'res_t')
  table.insert(used, tonumber(v[1] or '0') + tonumber(v[2] or '0'))
  table.insert(used, tonumber(v[3] or '0') + tonumber(v[4] or '0'))
  local kx = ARGV[a + 5]
  if kx ~= '0' then
    -- the key names its window, so its expiry is the same on every call
    redis.call('EXPIREAT', h, kx)
    redis.call('EXPIREAT', z, kx)
    redis.call('EXPIREAT', d, kx)
  end
end
return used
