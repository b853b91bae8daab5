"""The shared budget's one Lua script: every window, the pace and the 429 slow-down, atomically.

Redis runs a script alone, so N processes on M machines calling it can never grant together
more than any window allows. Time is Redis's own (``TIME``): the callers' clocks may disagree
by seconds, and a window judged on each caller's clock would let requests through twice.

Everything is in integer microseconds, written with ``%d``: Lua's numbers are doubles and
``tostring`` keeps 14 digits, which would round an epoch in microseconds to tens of them.

Each window is the in-memory ``SlidingWindow`` (bulksync.engine.budget) kept in Redis: a list
of ``"<bucket end>:<count>"`` in time order (at most ~1,010 buckets of period/1000, whatever
the traffic) and its total, expired from the head. They expire with the window, so the list
is also the quota ledger of issue 16: a run started later reads what earlier ones sent.

KEYS: the pace hash, then (list, total) of the last second's grants (the measured rate a 429
is judged against), then (list, total) per window.
ARGV: op ("acquire" or "peek"), base interval (0: unpaced), tolerance, 429s to apply first,
their longest Retry-After (-1: none), the number of windows, then limit, span and bucket width
of each window.

"acquire" replies ``{granted, wait, window, window wait, window used, now, paused until,
rate in mHz (-1: unpaced), lowered}``: granted with a wait, the request goes that much later
(its slot is reserved, counted in every window at that time); not granted (a pause, or no
slot within RESERVE), the caller waits and asks again. ``window``
is the 1-based index of the window that needs the longest to free up (0: none is full), which
the caller compares with its quota wait.
"peek" replies ``{now, used of each window}`` and writes nothing.
"""

from __future__ import annotations

SCRIPT = r"""
local SEC = 1000000
local RESERVE = 2 * SEC  -- how far ahead a slot may be granted (further: wait, ask again)
local pace = KEYS[1]
local op = ARGV[1]
local base_interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local throttles = tonumber(ARGV[4])
local retry_after = tonumber(ARGV[5])
local nwin = tonumber(ARGV[6])

local t = redis.call('TIME')
local now = tonumber(t[1]) * SEC + tonumber(t[2])

local function fmt(x) return string.format('%d', x) end

local function parse(entry)
  local sep = string.find(entry, ':', 1, true)
  return tonumber(string.sub(entry, 1, sep - 1)), tonumber(string.sub(entry, sep + 1))
end

-- SlidingWindow._expire: drop the buckets that ended a span ago; the total that is left.
local function expire(list, total, span)
  local n = tonumber(redis.call('GET', total) or '0')
  local horizon = now - span
  local popped = false
  while true do
    local head = redis.call('LINDEX', list, 0)
    if not head then
      if n ~= 0 then redis.call('DEL', total) end
      return 0
    end
    local stop, count = parse(head)
    if stop > horizon then
      if popped then redis.call('SET', total, fmt(n), 'KEEPTTL') end
      return n
    end
    n = n - count
    popped = true
    redis.call('LPOP', list)
  end
end

-- A grant at ``at`` (now, or the slot reserved for it a moment later): counted in the bucket
-- holding ``at``, or in the newest one when that ends later (remembered longer, never shorter).
local function record(list, total, span, res, n, at)
  local stop = (math.floor(at / res) + 1) * res
  local tail = redis.call('LINDEX', list, -1)
  local last, count = nil, 0
  if tail then last, count = parse(tail) end
  if last and last > stop then stop = last end
  if last == stop then
    redis.call('LSET', list, -1, fmt(stop) .. ':' .. fmt(count + 1))
  else
    redis.call('RPUSH', list, fmt(stop) .. ':1')
  end
  -- Kept as long as the newest bucket matters, then gone: no key outlives its window.
  local ttl = math.ceil((stop + span - now) / 1000) + 1000
  redis.call('SET', total, fmt(n + 1), 'PX', ttl)
  redis.call('PEXPIRE', list, ttl)
end

local windows = {}
for i = 1, nwin do
  local at = 6 + (i - 1) * 3
  windows[i] = {
    list = KEYS[4 + (i - 1) * 2], total = KEYS[5 + (i - 1) * 2],
    limit = tonumber(ARGV[at + 1]), span = tonumber(ARGV[at + 2]), res = tonumber(ARGV[at + 3]),
  }
end

if op == 'peek' then
  local out = {now}
  for i, w in ipairs(windows) do out[i + 1] = expire(w.list, w.total, w.span) end
  return out
end

local st = redis.call('HMGET', pace, 'tat', 'paused', 'slow', 'ceiling', 'lowered', 'recovered')
local tat = tonumber(st[1]) or 0
local paused = tonumber(st[2]) or 0
local slow = tonumber(st[3])        -- the pace a 429 set, requests/s (nil: none)
local ceiling = tonumber(st[4]) or 0
local lowered = tonumber(st[5]) or 0
local recovered = tonumber(st[6]) or now
local base = nil
if base_interval > 0 then base = SEC / base_interval end

-- The slow-down climbs back by a tenth of the limit the 429 showed per second (as
-- _pace.RECOVERY), held at 99% of it when nobody configured a pace, and is forgotten
-- once back at the configured one.
if slow then
  local target = 0.99 * ceiling
  if base then target = base end
  slow = math.min(target, slow + 0.1 * ceiling * (now - recovered) / SEC)
  recovered = now
  if base and slow >= base then slow = nil end
end

local lowered_now = 0
if throttles > 0 then
  local pause = 0
  if retry_after >= SEC then
    pause = retry_after
  elseif retry_after >= 0 then
    paused = math.max(paused, now + retry_after)  -- "a moment": no slower pace
  elseif not slow and not base then
    pause = SEC  -- an unpaced budget's first 429: most often a 1 s window burst into
  end
  if pause > 0 then paused = math.max(paused, now + pause) end
  -- One burst of 429s is one signal: the pace is decided anew at most once a second.
  if retry_after < 0 or retry_after >= SEC then
    if now - lowered >= SEC then
      -- What all processes sent over the last second is the limit the 429 shows, unless
      -- they were held back (a pause, a full window): then it says nothing, and the pace in
      -- force is the best guess. Never judged on an idle second, which would floor the pace.
      local measured = expire(KEYS[2], KEYS[3], SEC)
      local current = slow or base or measured
      local peak = current
      if measured >= 0.5 * current then peak = math.min(current, measured) end
      peak = math.max(1, peak)
      local decrease = 0.7
      if pause > 0 then decrease = 0.99 end  -- everyone waits: the pause is the backing off
      local floor = math.max(0.1, 0.05 * (base or peak))
      slow = math.max(floor, peak * decrease)
      ceiling, lowered, recovered, lowered_now = peak, now, now, 1
    end
  end
end

local rate = slow or base
local wait = math.max(0, paused - now)
local interval, pace_wait = 0, 0
if rate then
  interval = SEC / rate
  pace_wait = math.max(0, tat - math.max(tolerance, interval) - now)
end
-- When one more grant fits in a window: now if it has room, else when enough of its oldest
-- buckets (reserved slots included, all in time order) have left it.
local function free_at(w, n)
  if n < w.limit then return now end
  local excess = n - w.limit + 1
  local i = 0
  while true do
    local entry = redis.call('LINDEX', w.list, i)
    if not entry then return now end  -- the total is the sum of the list
    local stop, count = parse(entry)
    excess = excess - count
    if excess <= 0 then return math.max(stop + w.span, now + 1) end
    i = i + 1
  end
end

local at = now + pace_wait
local worst, worst_wait, worst_used = 0, 0, 0
local counts = {}
for i, w in ipairs(windows) do
  local n = expire(w.list, w.total, w.span)
  counts[i] = n
  local free = free_at(w, n)
  if free > now and free - now > worst_wait then
    worst, worst_wait, worst_used = i, free - now, n
  end
  at = math.max(at, free)
end
wait = math.max(wait, at - now)

-- No pause, and the next slot (the pace's, or a window's next room) is near: it is granted
-- now, to be used then (the caller sleeps), so a request costs one round trip, whatever holds
-- it back. A grant is counted at its slot in every window, each of which has room then.
local granted = 0
if paused <= now and at - now <= RESERVE then
  granted = 1
  if rate then tat = math.max(tat, at) + interval end
  for i, w in ipairs(windows) do record(w.list, w.total, w.span, w.res, counts[i], at) end
  local recent = expire(KEYS[2], KEYS[3], SEC)
  record(KEYS[2], KEYS[3], SEC, SEC / 10, recent, at)
end
wait = math.ceil(wait)

local fields = {'tat', fmt(tat), 'paused', fmt(paused), 'lowered', fmt(lowered),
                'recovered', fmt(recovered), 'ceiling', string.format('%.6f', ceiling)}
if slow then
  table.insert(fields, 'slow')
  table.insert(fields, string.format('%.6f', slow))
else
  redis.call('HDEL', pace, 'slow')
end
redis.call('HSET', pace, unpack(fields))
-- A minute past the last pause or grant that matters, the shared pace is forgotten.
local keep = math.max(paused, tat) - now
redis.call('PEXPIRE', pace, math.ceil(math.max(keep, 0) / 1000) + 60000)

local mhz = -1
if rate then mhz = math.floor(rate * 1000) end
return {granted, wait, worst, worst_wait, worst_used, now, paused, mhz, lowered_now}
"""
