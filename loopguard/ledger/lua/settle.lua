-- End a reservation on every key: settle it (add what was really spent) or release it.
-- KEYS: triples (hash, zset of expiries, zset of ended reservations) per budget key, as in
--   reserve.lua. Needs reclaim.lua prepended.
-- ARGV: now, rid, kind ('s' settle, 'r' release), keep_until (when the end of `rid` may be
--   forgotten), then per key: usd_n, tokens, key_expire_at (0 = never).
-- Idempotent per rid: a settle of a settled reservation adds nothing (a replay after a client
-- timeout), a release of an ended one does nothing. A settle after a release still adds its
-- spend: the release may be the resilient ledger reclaiming a reserve that timed out, after
-- which the call went out on the local fallback budget and was really paid.
-- A reservation that already expired (reclaimed), or was never made, is no error: the spend is
-- still added, so nothing that was really spent is ever lost.
local now, rid, kind, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = #KEYS / 3
for i = 1, n do
  local h, z, d = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  reclaim(h, z, d, now)
  local was = ended(d, rid)
  local a = 4 + (i - 1) * 3
  if was ~= 's' and not (kind == 'r' and was == 'r') then
    unhold(h, rid)
    redis.call('ZREM', z, rid)
    if kind == 's' then
      local u, t = ARGV[a + 1], ARGV[a + 2]
      if u ~= '0' or redis.call('HEXISTS', h, 'spent_n') == 0 then
        redis.call('HINCRBY', h, 'spent_n', u)
      end
      if t ~= '0' or redis.call('HEXISTS', h, 'spent_t') == 0 then
        redis.call('HINCRBY', h, 'spent_t', t)
      end
    end
    redis.call('ZADD', d, keep, kind .. ':' .. rid)
  end
  local kx = ARGV[a + 3]
  if kx ~= '0' then
    redis.call('EXPIREAT', h, kx)
    redis.call('EXPIREAT', d, kx)
  end
end
return 1
