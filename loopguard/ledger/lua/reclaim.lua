-- Shared prelude (the loader prepends it to every script): giving back reservations, and
-- remembering which reservations have ended.
-- Each budget key is three Redis keys: a hash h (totals and live holds), a sorted set z of live
-- reservation ids scored by their expiry, and a sorted set d of ended reservations ("s:<rid>"
-- settled, "r:<rid>" released) scored by when they may be forgotten. d is what makes every
-- script idempotent per reservation id: a settle replayed after a client timeout (it ran on the
-- server, the client never saw the reply) finds "s:<rid>" and adds nothing.

-- End reservation `rid` on one key: subtract its amounts from the key's reserved sums.
local function unhold(h, rid)
  local held = redis.call('HGET', h, 'r:' .. rid)
  if not held then return end
  local u, t = string.match(held, '^(%d+):(%d+)$')
  if u ~= '0' then redis.call('HINCRBY', h, 'res_n', '-' .. u) end
  if t ~= '0' then redis.call('HINCRBY', h, 'res_t', '-' .. t) end
  redis.call('HDEL', h, 'r:' .. rid)
end

-- Give back the reservations of one key whose expiry has passed (what returns the budget held
-- by a worker that died mid-call), and forget ended reservations past their keep time.
local function reclaim(h, z, d, now)
  local expired = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  for _, r in ipairs(expired) do unhold(h, r) end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now) end
  redis.call('ZREMRANGEBYSCORE', d, '-inf', now)
end

-- Whether reservation `rid` has ended on this key ('s' settled, 'r' released), else nil.
local function ended(d, rid)
  if redis.call('ZSCORE', d, 's:' .. rid) then return 's' end
  if redis.call('ZSCORE', d, 'r:' .. rid) then return 'r' end
  return nil
end
