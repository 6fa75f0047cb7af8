//! The Lua scripts that make each cluster step atomic in Redis, and the
//! decoding of what they return.
//!
//! Scripts are sent with `EVAL` each time: Redis caches them by hash, and a
//! Redis that restarted empty needs no `SCRIPT LOAD` dance.

use bytestring::ByteString;
use redis::Value;

use crate::room::Event;

/// Assigns the next seq, appends the frame to the room's stream (capped at
/// `history`) and broadcasts it, in one step: no node can see seq N+1 before N.
///
/// With an idempotency key, a key already used in this epoch answers the
/// first publish's seq and publishes nothing.
///
/// KEYS: meta, log, idempotency key. ARGV: candidate epoch, history, frame
/// head, frame tail, events channel, room, ttl ms (0 = keep), idempotency key
/// ("" = none), its ttl ms. Returns `{epoch, seq, duplicate (0/1)}`.
pub const PUBLISH: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
if ARGV[8] ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then
    local e, s = string.match(first, '^(%S+) (%d+)$')
    if e == epoch then return {epoch, tonumber(s), 1} end
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local frame = ARGV[3] .. seq .. ARGV[4]
local history = tonumber(ARGV[2])
if history > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', history, seq .. '-0', 'f', frame)
end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if history > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. epoch .. ' ' .. seq .. ' ' .. frame)
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[3], epoch .. ' ' .. seq, 'PX', ARGV[9])
end
return {epoch, seq, 0}
"#;

/// A room's order and its events after a point, read atomically; creates the
/// room (with the candidate epoch) if Redis does not have it.
///
/// If the room's seq is *behind* what this node already saw in the same epoch
/// (a Redis restored from an older snapshot), seqs would be given out twice: the
/// room gets a new epoch instead, so every node and client learns history was lost.
///
/// KEYS: meta, log. ARGV: candidate epoch, after (events with seq > after;
/// -1 = the last `count`), count, ttl ms, epoch seen ("" = none), seq seen.
/// Returns `{epoch, seq, seq1, frame1, …}` oldest first.
pub const READ: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seen = ARGV[5]
if epoch and epoch == seen and tonumber(redis.call('HGET', KEYS[1], 'seq')) < tonumber(ARGV[6]) then
  epoch = nil
end
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  local ttl = tonumber(ARGV[4])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local out = {epoch, seq}
local after = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
if count <= 0 then return out end
local entries
if after < 0 then
  entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', count)
  for i = #entries, 1, -1 do
    table.insert(out, entries[i][1])
    table.insert(out, entries[i][2][2])
  end
else
  entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', count)
  for i = 1, #entries do
    table.insert(out, entries[i][1])
    table.insert(out, entries[i][2][2])
  end
end
return out
"#;

/// Every live node's record and remaining lifetime; prunes ids whose record
/// expired. KEYS: nodes set. ARGV: node key prefix. Returns `{id, json, pttl, …}`.
pub const NODES: &str = r#"
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. id
  local record = redis.call('GET', key)
  if record then
    table.insert(out, id)
    table.insert(out, record)
    table.insert(out, redis.call('PTTL', key))
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return out
"#;

/// What [`READ`] found: the room's order and the events asked for.
#[derive(Debug, Clone)]
pub struct RoomRead {
    /// The room's epoch in Redis.
    pub epoch: String,
    /// Its head seq.
    pub seq: u64,
    /// Events, oldest first.
    pub events: Vec<Event>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// Decodes [`READ`]'s answer; `None` if it is not what the script returns.
pub fn decode_read(v: &Value) -> Option<RoomRead> {
    let Value::Array(items) = v else {
        return None;
    };
    let epoch = text(items.first()?)?;
    let seq = number(items.get(1)?)?;
    let mut events = Vec::with_capacity(items.len().saturating_sub(2) / 2);
    for pair in items[2..].chunks(2) {
        let [id, frame] = pair else {
            return None;
        };
        let id = text(id)?;
        let seq = id.split_once('-')?.0.parse().ok()?;
        events.push(Event {
            seq,
            frame: ByteString::from(text(frame)?),
        });
    }
    Some(RoomRead { epoch, seq, events })
}

/// Decodes [`PUBLISH`]'s answer: `(epoch, seq, duplicate)`.
pub fn decode_publish(v: &Value) -> Option<(String, u64, bool)> {
    let Value::Array(items) = v else {
        return None;
    };
    let duplicate = items.get(2).and_then(number).is_some_and(|d| d == 1);
    Some((text(items.first()?)?, number(items.get(1)?)?, duplicate))
}

/// Decodes [`NODES`]'s answer: `(id, record json, remaining ms)`.
pub fn decode_nodes(v: &Value) -> Option<Vec<(String, String, u64)>> {
    let Value::Array(items) = v else {
        return None;
    };
    items
        .chunks(3)
        .map(|c| match c {
            [id, json, ttl] => Some((text(id)?, text(json)?, number(ttl).unwrap_or(0))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_answers_decode_with_seqs_from_stream_ids() {
        let v = Value::Array(vec![
            bulk("e1"),
            Value::Int(9),
            bulk("8-0"),
            bulk("{\"seq\":8}"),
            bulk("9-0"),
            bulk("{\"seq\":9}"),
        ]);
        let r = decode_read(&v).expect("decodes");
        assert_eq!((r.epoch.as_str(), r.seq), ("e1", 9));
        assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [8, 9]);
        assert!(decode_read(&Value::Array(vec![bulk("e1")])).is_none());
        assert!(decode_read(&Value::Array(vec![bulk("e1"), Value::Int(1), bulk("x")])).is_none());
    }

    #[test]
    fn publish_and_nodes_answers_decode() {
        let v = Value::Array(vec![bulk("e1"), Value::Int(3), Value::Int(0)]);
        assert_eq!(decode_publish(&v), Some(("e1".into(), 3, false)));
        let v = Value::Array(vec![bulk("e1"), Value::Int(2), Value::Int(1)]);
        assert_eq!(decode_publish(&v), Some(("e1".into(), 2, true)));
        let v = Value::Array(vec![bulk("a"), bulk("{}"), Value::Int(250)]);
        assert_eq!(decode_nodes(&v), Some(vec![("a".into(), "{}".into(), 250)]));
    }
}
