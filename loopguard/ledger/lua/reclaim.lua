-- Shared prelude (prepended to reserve.lua and usage.lua by the loader): give back the
-- reservations of one key whose expiry has passed. This is what returns the budget held by a
-- worker that died mid-call.
local function reclaim(h, z, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, r in ipairs(expired) do
    local held = redis.call('HGET', h, 'r:' .. r)
    if held then
      local u, t = string.match(held, '^(%d+):(%d+)$')
      if u ~= '0' then redis.call('HINCRBY', h, 'res_n', '-' .. u) end
      if t ~= '0' then redis.call('HINCRBY', h, 'res_t', '-' .. t) end
      redis.call('HDEL', h, 'r:' .. r)
    end
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
end
