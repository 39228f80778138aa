-- Shared prelude (the loader prepends it to every script): giving back reservations.

-- End reservation `rid` on one key: subtract its amounts from the key's reserved sums.
local function unhold(h, rid)
  local held = redis.call('HGET', h, 'r:' .. rid)
  if not held then return end
  local u, t = string.match(held, '^(%d+):(%d+)$')
  if u ~= '0' then redis.call('HINCRBY', h, 'res_n', '-' .. u) end
  if t ~= '0' then redis.call('HINCRBY', h, 'res_t', '-' .. t) end
  redis.call('HDEL', h, 'r:' .. rid)
end

-- Give back the reservations of one key whose expiry has passed. This is what returns the
-- budget held by a worker that died mid-call.
local function reclaim(h, z, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, r in ipairs(expired) do unhold(h, r) end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
