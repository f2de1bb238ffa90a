"""Lua scripts that keep each multi-key step of the Redis queue atomic.

Keys, in this order, for every script: the task stream, the delayed sorted set, the dead-letter
stream, the attempts hash and the pause flag. All share one hash tag so they also work on Redis
Cluster.
"""

# Settle leased entries. The XACK result makes each settlement idempotent: one that is resent
# after a dropped connection, or one for an entry already settled elsewhere, changes nothing.
# The dead-letter stream is capped: beyond the cap the oldest dead letters are trimmed.
# ARGV: group, dead-letter cap (0: none), then per settlement: entry id, mode (retry | dead |
# release), task id, body, delay ms. Returns {settled, dead letters trimmed}.
SETTLE = """
local settled, trimmed = 0, 0
local cap = tonumber(ARGV[2])
for s = 3, #ARGV, 5 do
  local entry, mode, task_id, body, delay = ARGV[s], ARGV[s + 1], ARGV[s + 2], ARGV[s + 3], tonumber(ARGV[s + 4])
  if redis.call('XACK', KEYS[1], ARGV[1], entry) == 1 then
    settled = settled + 1
    redis.call('XDEL', KEYS[1], entry)
    if mode == 'dead' then
      redis.call('HDEL', KEYS[4], task_id)
      redis.call('XADD', KEYS[3], '*', 't', body)
      if cap > 0 then
        trimmed = trimmed + redis.call('XTRIM', KEYS[3], 'MAXLEN', cap)
      end
    elseif mode == 'release' then
      -- The task never started: uncount its attempt and make it visible to every consumer at once.
      if redis.call('HINCRBY', KEYS[4], task_id, -1) <= 0 then
        redis.call('HDEL', KEYS[4], task_id)
      end
      redis.call('XADD', KEYS[1], '*', 'i', task_id, 't', body)
    elseif delay > 0 then
      -- Server time, so that consumers on hosts with skewed clocks agree on when a retry is due.
      local now = redis.call('TIME')
      redis.call('ZADD', KEYS[2], now[1] * 1000 + math.floor(now[2] / 1000) + delay, body)
    else
      redis.call('XADD', KEYS[1], '*', 'i', task_id, 't', body)
    end
  end
end
return {settled, trimmed}
"""

# Add tasks to the stream. ARGV: task id, body, task id, body, ... One command per batch packs far
# faster in redis-py than one XADD per task, and a batch lands whole or not at all.
PUBLISH = """
for i = 1, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'i', ARGV[i], 't', ARGV[i + 1])
end
return #ARGV / 2
"""

# Shared by the reading scripts: count one delivery attempt per entry in the attempts hash and
# encode the entries as one JSON text, `[[entry id, attempts, task], ...]`. A single bulk string
# costs the client one json.loads instead of parsing a reply of several values per entry, which
# is what dominates a Python consumer's time. An entry that is not a task gets attempts 0 and
# its raw fields, for the caller to dead-letter.
_RECORDS = """
local function records(entries, attempts_key)
  local parts = {}
  for _, entry in ipairs(entries) do
    local fields = {}
    local flat = entry[2]
    for i = 1, #flat, 2 do
      fields[flat[i]] = flat[i + 1]
    end
    if fields['i'] and fields['t'] and pcall(cjson.decode, fields['t']) then
      local attempts = redis.call('HINCRBY', attempts_key, fields['i'], 1)
      parts[#parts + 1] = '["' .. entry[1] .. '",' .. attempts .. ',' .. fields['t'] .. ']'
    else
      parts[#parts + 1] = '["' .. entry[1] .. '",0,' .. cjson.encode(fields) .. ']'
    end
  end
  return '[' .. table.concat(parts, ',') .. ']'
end
"""

# Send batched acks, then lease new entries without waiting (scripts cannot block), in one round
# trip. ARGV: group, consumer, count, then per ack: entry id, task id. While the queue is paused
# the acks are still sent but nothing is leased, and the reply is `null`.
FETCH = _RECORDS + """
if #ARGV > 3 then
  local entries, task_ids = {}, {}
  for a = 4, #ARGV, 2 do
    entries[#entries + 1] = ARGV[a]
    task_ids[#task_ids + 1] = ARGV[a + 1]
  end
  redis.call('XACK', KEYS[1], ARGV[1], unpack(entries))
  redis.call('XDEL', KEYS[1], unpack(entries))
  redis.call('HDEL', KEYS[4], unpack(task_ids))
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  return 'null'
end
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
if not reply then
  return '[]'
end
return records(reply[1][2], KEYS[4])
"""

# Take over entries idle longer than the visibility timeout (their consumer is presumed dead).
# ARGV: group, consumer, min idle ms, cursor, count. Returns {next cursor, records, deleted count};
# while the queue is paused nothing is taken over and the cursor stays where it is.
CLAIM = _RECORDS + """
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {ARGV[4], '[]', 0}
end
local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
return {reply[1], records(reply[2], KEYS[4]), #reply[3]}
"""

# Move delayed tasks that are due back to the stream. ARGV: the most to move in one call.
PROMOTE = """
local now = redis.call('TIME')
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now[1] * 1000 + math.floor(now[2] / 1000),
                       'LIMIT', 0, tonumber(ARGV[1]))
for _, body in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'i', cjson.decode(body)['id'], 't', body)
  redis.call('ZREM', KEYS[2], body)
end
return #due
"""

# Reset the idle time of the entries this consumer still holds, so a long handler is not taken
# over while its process is alive. Only entries the consumer still owns are touched: one that
# another consumer already claimed is never stolen back.
# ARGV: group, consumer, then the entry ids the caller holds.
EXTEND = """
local owned = {}
for _, entry in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000, ARGV[2])) do
  owned[entry[1]] = true
end
local ids = {}
for i = 3, #ARGV do
  if owned[ARGV[i]] then
    ids[#ids + 1] = ARGV[i]
  end
end
local count = #ids
if count > 0 then
  -- JUSTID: a lease extension is not a new delivery, so the delivery counter stays as it is.
  ids[count + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
end
return count
"""

# Remove consumers that hold nothing and were silent for long, atomically: a consumer deleted with
# pending entries would take those entries' leases with it. ARGV: group, silence in ms, own name.
PRUNE = """
local removed = 0
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #consumer, 2 do
    info[consumer[i]] = consumer[i + 1]
  end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed = removed + 1
  end
end
return removed
"""

# Move dead letters back to the task stream, each only if it is still dead: XDEL answering 1 is
# the proof, so two operators requeueing at once never both move one task, and a task moved is
# no longer dead. The attempts count was dropped when the task died, so it starts again at zero.
# ARGV per dead letter: its entry id in the dead stream, task id, body to publish.
# Returns the task ids that were no longer dead.
REQUEUE = """
local missed = {}
for i = 1, #ARGV, 3 do
  if redis.call('XDEL', KEYS[3], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[4], ARGV[i + 1])
    redis.call('XADD', KEYS[1], '*', 'i', ARGV[i + 1], 't', ARGV[i + 2])
  else
    missed[#missed + 1] = ARGV[i + 1]
  end
end
return missed
"""

# Delete up to ARGV[2] ready entries: those after the group's last delivered id, which no consumer
# has leased (retried and released tasks are added again, so they are there too). Leased entries,
# before that id, are left alone. ARGV: group, most to delete. Returns how many were deleted.
PURGE_READY = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local last = '0-0'
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  if info['name'] == ARGV[1] then
    last = info['last-delivered-id']
  end
end
local entries = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', tonumber(ARGV[2]))
if #entries == 0 then
  return 0
end
local ids, task_ids = {}, {}
for _, entry in ipairs(entries) do
  ids[#ids + 1] = entry[1]
  local flat = entry[2]
  for i = 1, #flat, 2 do
    if flat[i] == 'i' then
      task_ids[#task_ids + 1] = flat[i + 1]
    end
  end
end
redis.call('XDEL', KEYS[1], unpack(ids))
if #task_ids > 0 then
  redis.call('HDEL', KEYS[4], unpack(task_ids))
end
return #ids
"""

# Read dead letters as one JSON text, `[[entry id, task], ...]`: a single bulk string parses far
# faster in redis-py than XRANGE's reply of nested values (see _RECORDS). Each body is the JSON of
# a task, written by this queue. ARGV: start id (`(` for exclusive), end id, count.
DEAD_RANGE = """
local parts = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], ARGV[1], ARGV[2], 'COUNT', tonumber(ARGV[3]))) do
  local flat = entry[2]
  for i = 1, #flat, 2 do
    if flat[i] == 't' then
      parts[#parts + 1] = '["' .. entry[1] .. '",' .. flat[i + 1] .. ']'
    end
  end
end
return '[' .. table.concat(parts, ',') .. ']'
"""
