//! The Lua scripts that make each cluster step atomic in Redis, and the
//! decoding of what they return.
//!
//! Scripts are sent with `EVAL` each time: Redis caches them by hash, and a
//! Redis that restarted empty needs no `SCRIPT LOAD` dance.

use std::sync::Arc;

use bytestring::ByteString;
use redis::Value;

use super::presence::{self, Share};
use crate::event::Event;
use crate::event::KeyChange;

/// Assigns the next seq, appends the frame to the room's stream (capped at
/// `history`) and broadcasts it, in one step: no node can see seq N+1 before N.
///
/// With an idempotency key, a key already used in this epoch answers the
/// first publish's seq and publishes nothing. With a state key (a keyed room),
/// the room's state hash changes in the same step — the key's field set to
/// `SEQ FRAME`, or removed by a delete — and a new key while the hash holds
/// `max_keys` fields is refused before any seq is used. A keyed event's
/// stream entry carries its key (`k`) and delete flag (`d`), and its broadcast
/// a header before the frame (see `wire::EventMessage`).
///
/// KEYS: meta, log, idempotency key, state. ARGV: candidate epoch, history,
/// frame head, frame tail, events channel, room, ttl ms (0 = keep),
/// idempotency key ("" = none), its ttl ms, state key ("" = none), delete
/// ("1"/"0"), max_keys, replicas needed (0 = none), the primary's replication
/// id ("" = unknown: no fence), fence cleared ("1"/"0"). Returns `{epoch, seq,
/// outcome}`: 0 published, 1 duplicate, 2 refused (max_keys), 3 refused
/// (fewer online replicas than needed: nothing written, nothing delivered —
/// the primary that lost its replica, or a demoted one still taking writes
/// during a Sentinel failover, could not keep the event), 4 refused (the room
/// was last written under another primary and the failover fence has not
/// cleared here: see `cluster::fence`).
pub const PUBLISH: &str = r#"
local need = tonumber(ARGV[13])
if need > 0 then
  local online = 0
  for _ in string.gmatch(redis.call('INFO', 'replication'), 'state=online') do
    online = online + 1
  end
  if online < need then return {'', online, 3} end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local rid = ARGV[14]
if epoch and rid ~= '' and ARGV[15] ~= '1' and redis.call('HGET', KEYS[1], 'rid') ~= rid then
  return {epoch, 0, 4}
end
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2], KEYS[4])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
if ARGV[8] ~= '' then
  local first = redis.call('GET', KEYS[3])
  if first then
    local e, s = string.match(first, '^(%S+) (%d+)$')
    if e == epoch then return {epoch, tonumber(s), 1} end
  end
end
local key = ARGV[10]
local delete = ARGV[11] == '1'
if key ~= '' and not delete and redis.call('HEXISTS', KEYS[4], key) == 0
    and redis.call('HLEN', KEYS[4]) >= tonumber(ARGV[12]) then
  return {epoch, 0, 2}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if rid ~= '' then redis.call('HSET', KEYS[1], 'rid', rid) end
local frame = ARGV[3] .. seq .. ARGV[4]
local history = tonumber(ARGV[2])
if history > 0 then
  if key == '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', history, seq .. '-0', 'f', frame)
  elseif delete then
    redis.call('XADD', KEYS[2], 'MAXLEN', history, seq .. '-0', 'f', frame, 'k', key, 'd', '1')
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', history, seq .. '-0', 'f', frame, 'k', key)
  end
end
local header = ''
if key ~= '' then
  if delete then
    redis.call('HDEL', KEYS[4], key)
    header = 'd'
  else
    redis.call('HSET', KEYS[4], key, seq .. ' ' .. frame)
    header = 'k'
  end
  header = header .. string.len(key) .. ' ' .. key .. ' '
end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  if history > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  redis.call('PEXPIRE', KEYS[4], ttl)
end
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ' ' .. epoch .. ' ' .. seq .. ' ' .. header .. frame)
if ARGV[8] ~= '' then
  redis.call('SET', KEYS[3], epoch .. ' ' .. seq, 'PX', ARGV[9])
end
return {epoch, seq, 0}
"#;

/// A room's order, its events after a point and (keyed) its state, read
/// atomically — so the state is the one at the seq read; creates the room
/// (with the candidate epoch) if Redis does not have it.
///
/// If the room's seq is *behind* what this node already saw in the same epoch
/// (a Redis restored from an older snapshot), seqs would be given out twice: the
/// room gets a new epoch instead, so every node and client learns history was lost.
///
/// KEYS: meta, log, state. ARGV: candidate epoch, after (events with seq >
/// after; -1 = the last `count`), count, ttl ms, epoch seen ("" = none), seq
/// seen, with state ("1"/"0"), only if it exists ("1": a missing room is
/// left missing and answered with epoch ""). Returns `{epoch, seq, n, (id,
/// frame, key, delete) × n oldest first, (state key, "SEQ FRAME") × …}`.
pub const READ: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch and ARGV[8] == '1' then return {'', 0, 0} end
local seen = ARGV[5]
if epoch and epoch == seen and tonumber(redis.call('HGET', KEYS[1], 'seq')) < tonumber(ARGV[6]) then
  epoch = nil
end
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  local ttl = tonumber(ARGV[4])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local after = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local entries = {}
if count > 0 then
  if after < 0 then
    local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', count)
    for i = #newest, 1, -1 do table.insert(entries, newest[i]) end
  else
    entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+', 'COUNT', count)
  end
end
local out = {epoch, seq, #entries}
for i = 1, #entries do
  local fields = entries[i][2]
  local f, k, d = '', '', ''
  for j = 1, #fields, 2 do
    if fields[j] == 'f' then f = fields[j + 1]
    elseif fields[j] == 'k' then k = fields[j + 1]
    elseif fields[j] == 'd' then d = fields[j + 1] end
  end
  table.insert(out, entries[i][1])
  table.insert(out, f)
  table.insert(out, k)
  table.insert(out, d)
end
if ARGV[7] == '1' then
  local state = redis.call('HGETALL', KEYS[3])
  for i = 1, #state do table.insert(out, state[i]) end
end
return out
"#;

/// Every live node's record and remaining lifetime; prunes ids whose record
/// expired. Also stamps this node's beat (Redis time) for the failover fence
/// and drops beats older than the fence's grace. KEYS: nodes set, beats.
/// ARGV: node key prefix, this node, grace ms. Returns `{id, json, pttl, …}`.
pub const NODES: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local beats = redis.call('HGETALL', KEYS[2])
for i = 1, #beats, 2 do
  if now - tonumber(beats[i + 1]) > tonumber(ARGV[3]) then redis.call('HDEL', KEYS[2], beats[i]) end
end
redis.call('HSET', KEYS[2], ARGV[2], now)
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

/// The failover fence at this primary (see `cluster::fence`): which nodes
/// with a beat within the grace have not checked in here yet. KEYS: beats,
/// the caught-up set of this replication id. ARGV: the replication id the
/// caller believes it talks to, grace ms. Returns `{1, missing node …}`, or
/// `{0}` when this primary's replication id is another.
pub const FENCE: &str = r#"
local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
if rid ~= ARGV[1] then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {1}
local beats = redis.call('HGETALL', KEYS[1])
for i = 1, #beats, 2 do
  if now - tonumber(beats[i + 1]) <= tonumber(ARGV[2])
      and redis.call('SISMEMBER', KEYS[2], beats[i]) == 0 then
    table.insert(out, beats[i])
  end
end
return out
"#;

/// A node's check-in after catching up every room at this primary; refused
/// (0) when this primary's replication id is not the one the catch-up began
/// at. KEYS: the caught-up set of that id. ARGV: the id, the node, ttl ms.
pub const CHECK_IN: &str = r#"
local rid = string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)')
if rid ~= ARGV[1] then return 0 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Writes this node's share of a presence room and broadcasts the write, in
/// one step (see `cluster::presence`). KEYS: the share hash, the room's
/// presence node set. ARGV: room, node, instance, version, ttl ms, channel,
/// then `=` and `field count …` (the whole share), or `DELTA FIELD`.
pub const PRESENCE_WRITE: &str = r#"
local room, node, instance, version, ttl, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local msg
if ARGV[7] == '=' then
  redis.call('DEL', KEYS[1])
  for i = 8, #ARGV, 2 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  msg = '='
else
  local n = redis.call('HINCRBY', KEYS[1], ARGV[8], ARGV[7])
  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[8]) end
  msg = ARGV[7] .. ' ' .. ARGV[8]
end
redis.call('HSET', KEYS[1], 'i', instance, 'v', version)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], node)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PUBLISH', channel, room .. ' ' .. node .. ' ' .. instance .. ' ' .. version .. ' ' .. msg)
return 1
"#;

/// Pushes back the expiry of this node's share; 0 when it is gone (expired
/// while this node could not reach Redis: to be written whole).
/// KEYS: the share hash, the room's presence node set. ARGV: node, ttl ms.
pub const PRESENCE_KEEP: &str = r#"
if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"#;

/// Every node's share of a presence room, in one read (so the versions
/// match the messages). KEYS: the room's presence node set. ARGV: the share
/// key prefix. Returns `{node, {field, value, …}, …}`; prunes nodes whose
/// share expired.
pub const PRESENCE_READ: &str = r#"
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. node)
  if #fields > 0 then
    table.insert(out, node)
    table.insert(out, fields)
  else
    redis.call('SREM', KEYS[1], node)
  end
end
return out
"#;

/// Decodes [`PRESENCE_READ`]'s answer into each node's share.
pub fn decode_presence(v: &Value) -> Option<Vec<(String, Share)>> {
    let Value::Array(items) = v else {
        return None;
    };
    items
        .chunks(2)
        .map(|c| {
            let [node, Value::Array(fields)] = c else {
                return None;
            };
            let mut share = Share::default();
            for pair in fields.chunks(2) {
                let [name, value] = pair else { return None };
                let (name, value) = (text(name)?, text(value)?);
                match name.as_str() {
                    "i" => share.instance = value,
                    "v" => share.version = value.parse().ok()?,
                    _ => {
                        if let Some(field) = presence::parse_field(&name) {
                            share.counts.insert(field, value.parse().ok()?);
                        }
                    }
                }
            }
            Some((text(node)?, share))
        })
        .collect()
}

/// What [`READ`] found: the room's order, the events asked for and (when
/// asked) its state.
#[derive(Debug, Clone)]
pub struct RoomRead {
    /// The room's epoch in Redis.
    pub epoch: String,
    /// Its head seq.
    pub seq: u64,
    /// Events, oldest first.
    pub events: Vec<Event>,
    /// A keyed room's state at `seq`, in seq order.
    pub state: Vec<Event>,
}

/// What [`PUBLISH`] did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Landed {
    /// Published at `seq`.
    Published(String, u64),
    /// A retry of the publish that got `seq`: nothing published.
    Duplicate(String, u64),
    /// A new state key past `max_keys`: nothing published, no seq used.
    OverMaxKeys,
    /// Only this many replicas online, fewer than needed: nothing published.
    TooFewReplicas(u64),
    /// Last written under another primary, the fence not cleared: nothing
    /// published, no seq used.
    Fenced,
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

/// A state key as the scripts hold it ("" = none) and its delete flag.
fn key_change(key: String, delete: &str) -> Option<KeyChange> {
    (!key.is_empty()).then(|| KeyChange {
        key: Arc::from(key),
        delete: delete == "1",
    })
}

/// Decodes [`READ`]'s answer; `None` if it is not what the script returns.
pub fn decode_read(v: &Value) -> Option<RoomRead> {
    let Value::Array(items) = v else {
        return None;
    };
    let epoch = text(items.first()?)?;
    let seq = number(items.get(1)?)?;
    let n = usize::try_from(number(items.get(2)?)?).ok()?;
    let log_end = n.checked_mul(4)?.checked_add(3)?;
    let entries = items.get(3..log_end)?;
    let mut events = Vec::with_capacity(n);
    for entry in entries.chunks(4) {
        let [id, frame, key, delete] = entry else {
            return None;
        };
        let seq = text(id)?.split_once('-')?.0.parse().ok()?;
        events.push(Event {
            seq,
            frame: ByteString::from(text(frame)?),
            key: key_change(text(key)?, &text(delete)?),
        });
    }
    let mut state = Vec::with_capacity((items.len() - log_end) / 2);
    for pair in items[log_end..].chunks(2) {
        let [key, value] = pair else {
            return None;
        };
        let value = text(value)?;
        let (seq, frame) = value.split_once(' ')?;
        state.push(Event {
            seq: seq.parse().ok()?,
            frame: ByteString::from(frame),
            key: key_change(text(key)?, "0"),
        });
    }
    state.sort_unstable_by_key(|e| e.seq);
    Some(RoomRead {
        epoch,
        seq,
        events,
        state,
    })
}

/// Decodes [`PUBLISH`]'s answer.
pub fn decode_publish(v: &Value) -> Option<Landed> {
    let Value::Array(items) = v else {
        return None;
    };
    let epoch = text(items.first()?)?;
    let seq = number(items.get(1)?)?;
    match items.get(2).and_then(number) {
        Some(0) | None => Some(Landed::Published(epoch, seq)),
        Some(1) => Some(Landed::Duplicate(epoch, seq)),
        Some(2) => Some(Landed::OverMaxKeys),
        Some(3) => Some(Landed::TooFewReplicas(seq)),
        Some(4) => Some(Landed::Fenced),
        Some(_) => None,
    }
}

/// Decodes [`FENCE`]'s answer: the nodes not checked in yet, or `None` when
/// the primary is not the one asked about.
pub fn decode_fence(v: &Value) -> Option<Option<Vec<String>>> {
    let Value::Array(items) = v else {
        return None;
    };
    match items.first().and_then(number)? {
        0 => Some(None),
        _ => items[1..].iter().map(text).collect::<Option<_>>().map(Some),
    }
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
    fn read_answers_decode_with_seqs_from_stream_ids_and_the_state() {
        let v = Value::Array(vec![
            bulk("e1"),
            Value::Int(9),
            Value::Int(2),
            bulk("8-0"),
            bulk("{\"seq\":8}"),
            bulk(""),
            bulk(""),
            bulk("9-0"),
            bulk("{\"seq\":9}"),
            bulk("k 1"),
            bulk("1"),
            bulk("b"),
            bulk("7 {\"seq\":7}"),
            bulk("a"),
            bulk("3 {\"seq\":3}"),
        ]);
        let r = decode_read(&v).expect("decodes");
        assert_eq!((r.epoch.as_str(), r.seq), ("e1", 9));
        assert_eq!(r.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [8, 9]);
        assert_eq!(r.events[0].key, None);
        let deleted = r.events[1].key.as_ref().expect("keyed");
        assert_eq!((&*deleted.key, deleted.delete), ("k 1", true));
        let state: Vec<(u64, String)> = r
            .state
            .iter()
            .map(|e| (e.seq, e.key.as_ref().map_or("", |k| &*k.key).to_string()))
            .collect();
        assert_eq!(
            state,
            [(3, "a".to_string()), (7, "b".to_string())],
            "in seq order"
        );
        assert_eq!(&*r.state[0].frame, "{\"seq\":3}");
        let empty = Value::Array(vec![bulk("e1"), Value::Int(0), Value::Int(0)]);
        assert!(decode_read(&empty).is_some_and(|r| r.events.is_empty() && r.state.is_empty()));
        assert!(decode_read(&Value::Array(vec![bulk("e1")])).is_none());
        let short = Value::Array(vec![bulk("e1"), Value::Int(1), Value::Int(1), bulk("x")]);
        assert!(decode_read(&short).is_none());
    }

    #[test]
    fn publish_and_nodes_answers_decode() {
        let v = Value::Array(vec![bulk("e1"), Value::Int(3), Value::Int(0)]);
        assert_eq!(decode_publish(&v), Some(Landed::Published("e1".into(), 3)));
        let v = Value::Array(vec![bulk("e1"), Value::Int(2), Value::Int(1)]);
        assert_eq!(decode_publish(&v), Some(Landed::Duplicate("e1".into(), 2)));
        let v = Value::Array(vec![bulk("e1"), Value::Int(0), Value::Int(2)]);
        assert_eq!(decode_publish(&v), Some(Landed::OverMaxKeys));
        let v = Value::Array(vec![bulk(""), Value::Int(0), Value::Int(3)]);
        assert_eq!(decode_publish(&v), Some(Landed::TooFewReplicas(0)));
        let v = Value::Array(vec![bulk("e1"), Value::Int(0), Value::Int(4)]);
        assert_eq!(decode_publish(&v), Some(Landed::Fenced));
        let v = Value::Array(vec![Value::Int(1), bulk("b")]);
        assert_eq!(decode_fence(&v), Some(Some(vec!["b".to_string()])));
        assert_eq!(decode_fence(&Value::Array(vec![Value::Int(0)])), Some(None));
        let v = Value::Array(vec![bulk("a"), bulk("{}"), Value::Int(250)]);
        assert_eq!(decode_nodes(&v), Some(vec![("a".into(), "{}".into(), 250)]));
    }
}
