//! Presence across nodes (contract section 13): what the subscriber task keeps
//! so that every node counts every node's joins and leaves in one order.
//!
//! Each node owns one Redis hash per presence room, its *share*: its sessions
//! per user (`u<user>`), its anonymous sessions (`a`), its process instance
//! (`i`) and a version (`v`) that grows with each of its writes. A write
//! changes the hash and publishes the change on the presence channel in one
//! script, so a reader that took a snapshot of the hashes knows, by version,
//! which later messages the snapshot already holds.
//!
//! Every node, its own changes included, counts a change when it comes back
//! on the channel: one Redis connection delivers them in one order, so each
//! node sends its subscribers the same joins and leaves in the same order.
//! The state here is pure (no I/O); the subscriber does the reads and writes
//! it asks for:
//!
//! - a local change updates this node's own counts and is written;
//! - a message applies to the sender's cached share when newer than it, or
//!   asks for a re-read (another instance of that node: a restart);
//! - a snapshot replaces the cached shares and yields the difference;
//! - a node that drops out of the live nodes takes its share with it (its
//!   users leave everywhere within three heartbeats), and one that comes back
//!   is read again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::presence::Change;

/// A user field (`None`: the anonymous count).
pub type Field = Option<Arc<str>>;

/// The hash field of `field`.
pub fn field_name(field: &Field) -> String {
    match field {
        Some(user) => format!("u{user}"),
        None => "a".to_string(),
    }
}

/// The field a hash field names; `None` for the bookkeeping fields.
pub fn parse_field(name: &str) -> Option<Field> {
    match name.as_bytes().first()? {
        b'u' => Some(Some(Arc::from(&name[1..]))),
        b'a' if name.len() == 1 => Some(None),
        _ => None,
    }
}

/// One node's share of a room, as last read or heard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Share {
    /// The node process that wrote it.
    pub instance: String,
    /// Its last write's version.
    pub version: u64,
    /// Sessions per field.
    pub counts: HashMap<Field, i64>,
}

/// A change as one node published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub node: String,
    /// Its process instance.
    pub instance: String,
    /// The write's version.
    pub version: u64,
    /// `None`: the node rewrote its whole share (read it again).
    pub change: Option<(Field, i64)>,
}

/// One room's presence as this node follows it.
#[derive(Debug, Default)]
struct Room {
    /// This node's sessions per field: the truth its share is written from.
    own: HashMap<Field, i64>,
    /// Its share in Redis may differ from `own` (a write failed).
    dirty: bool,
    /// Every live node's share, this node's included (as heard back).
    shares: HashMap<String, Share>,
}

/// What a write of this node's share carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// One field changed.
    Delta {
        /// Version of the write.
        version: u64,
        field: Field,
        /// By how much.
        delta: i64,
    },
    /// The whole share, replacing what Redis holds.
    Whole {
        /// Version of the write.
        version: u64,
        /// Every field with a count.
        counts: Vec<(Field, i64)>,
    },
}

/// What a message asks of the subscriber.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Count these changes.
    Count(Vec<Change>),
    /// Read the room's shares again.
    Reread,
}

/// Changes to one room's members.
pub type RoomChanges = (Arc<str>, Vec<Change>);

/// The nodes presence counts as live, as the heartbeat task last read them
/// (`None` before its first read).
pub type LiveNodes = Option<HashSet<String>>;

/// Every presence room this node mirrors; see the module docs.
#[derive(Debug, Default)]
pub struct Rooms {
    node: String,
    rooms: HashMap<Arc<str>, Room>,
    /// Versions of this process's writes (one sequence for all rooms, so a
    /// version never repeats within an instance).
    version: u64,
    /// The nodes counted as live (this one always is); `None` until the
    /// first heartbeat read.
    live: LiveNodes,
}

impl Rooms {
    /// Nothing followed yet, for node `node`.
    pub fn new(node: &str) -> Self {
        Rooms {
            node: node.to_string(),
            ..Rooms::default()
        }
    }

    /// Starts following `room`.
    pub fn track(&mut self, room: Arc<str>) {
        self.rooms.entry(room).or_default();
    }

    /// Stops following `room` (its mirror left this node).
    pub fn untrack(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// Whether `room` is followed.
    pub fn tracks(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// The followed rooms.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.rooms.keys().cloned().collect()
    }

    fn next_version(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// One of this node's sessions joined or left: the write to make, if
    /// `room` is followed.
    pub fn local(&mut self, room: &str, change: Change) -> Option<Write> {
        let version = self.version + 1;
        let r = self.rooms.get_mut(room)?;
        let count = r.own.entry(change.user.clone()).or_insert(0);
        *count += change.delta;
        if *count <= 0 {
            r.own.remove(&change.user);
        }
        self.version = version;
        Some(Write::Delta {
            version,
            field: change.user,
            delta: change.delta,
        })
    }

    /// A write of `room`'s share failed: it is rewritten whole later.
    pub fn failed(&mut self, room: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.dirty = true;
        }
    }

    /// The rooms whose share must be written whole: after a failure, or for
    /// every room with sessions here (`all`, after a reconnect).
    pub fn to_rewrite(&self, all: bool) -> Vec<Arc<str>> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.dirty || (all && !r.own.is_empty()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The rooms where this node has sessions (their shares' expiry is
    /// pushed back every heartbeat).
    pub fn occupied(&self) -> Vec<Arc<str>> {
        self.rooms
            .iter()
            .filter(|(_, r)| !r.own.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The whole-share write of `room`, marked as written (a failure marks it
    /// again).
    pub fn whole(&mut self, room: &str) -> Option<Write> {
        let version = self.next_version();
        let r = self.rooms.get_mut(room)?;
        r.dirty = false;
        let mut counts: Vec<(Field, i64)> = r.own.iter().map(|(f, n)| (f.clone(), *n)).collect();
        counts.sort();
        Some(Write::Whole { version, counts })
    }

    /// A message from the presence channel.
    pub fn heard(&mut self, room: &str, msg: Heard) -> Option<Outcome> {
        let live = self.is_live(&msg.node);
        let r = self.rooms.get_mut(room)?;
        if !live {
            // Counted out already; it is read again when it is back.
            return None;
        }
        let share = r.shares.get_mut(&msg.node);
        match (share, msg.change) {
            (Some(s), _) if s.instance == msg.instance && msg.version <= s.version => None,
            (Some(s), Some((field, delta))) if s.instance == msg.instance => {
                s.version = msg.version;
                let n = s.counts.entry(field.clone()).or_insert(0);
                *n += delta;
                if *n <= 0 {
                    s.counts.remove(&field);
                }
                Some(Outcome::Count(vec![Change { user: field, delta }]))
            }
            // A new instance, a whole rewrite, or a node not read yet.
            _ => Some(Outcome::Reread),
        }
    }

    /// `room`'s shares as just read (every node's hash, `(node, share)`): the
    /// cached shares are replaced by the live nodes' ones, and the changes
    /// that takes are returned.
    pub fn read(&mut self, room: &str, shares: Vec<(String, Share)>) -> Vec<Change> {
        let live: Vec<(String, Share)> = shares
            .into_iter()
            .filter(|(node, _)| self.is_live(node))
            .collect();
        let Some(r) = self.rooms.get_mut(room) else {
            return Vec::new();
        };
        let before = totals(r.shares.values());
        r.shares = live.into_iter().collect();
        let after = totals(r.shares.values());
        difference(&before, &after)
    }

    /// The live nodes changed: the shares of nodes gone are dropped (the
    /// changes per room), and the rooms to read again because a node came
    /// (back).
    pub fn set_live(&mut self, nodes: HashSet<String>) -> (Vec<RoomChanges>, bool) {
        let previous = self.live.replace(nodes);
        let came = match &previous {
            None => true,
            Some(before) => self.live.iter().flatten().any(|n| !before.contains(n)),
        };
        let mut gone = Vec::new();
        let live = self.live.clone().unwrap_or_default();
        let node = self.node.clone();
        for (name, r) in &mut self.rooms {
            let before = totals(r.shares.values());
            r.shares.retain(|n, _| *n == node || live.contains(n));
            let after = totals(r.shares.values());
            let changes = difference(&before, &after);
            if !changes.is_empty() {
                gone.push((name.clone(), changes));
            }
        }
        (gone, came)
    }

    fn is_live(&self, node: &str) -> bool {
        node == self.node || self.live.as_ref().is_none_or(|l| l.contains(node))
    }
}

/// Sessions per field over `shares`.
fn totals<'a>(shares: impl Iterator<Item = &'a Share>) -> HashMap<Field, i64> {
    let mut sum: HashMap<Field, i64> = HashMap::new();
    for s in shares {
        for (f, n) in &s.counts {
            *sum.entry(f.clone()).or_insert(0) += n;
        }
    }
    sum
}

/// The changes that take `before` to `after`: leaves first, then joins, each
/// in field order (every node computes the same list from the same read).
fn difference(before: &HashMap<Field, i64>, after: &HashMap<Field, i64>) -> Vec<Change> {
    let mut fields: Vec<&Field> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    let mut changes: Vec<Change> = fields
        .into_iter()
        .filter_map(|f| {
            let delta = after.get(f).copied().unwrap_or(0) - before.get(f).copied().unwrap_or(0);
            (delta != 0).then(|| Change {
                user: f.clone(),
                delta,
            })
        })
        .collect();
    changes.sort_by_key(|c| c.delta > 0);
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Field {
        Some(Arc::from(name))
    }

    fn share(instance: &str, version: u64, counts: &[(&str, i64)]) -> Share {
        Share {
            instance: instance.into(),
            version,
            counts: counts.iter().map(|(u, n)| (user(u), *n)).collect(),
        }
    }

    fn heard(node: &str, version: u64, change: Option<(&str, i64)>) -> Heard {
        Heard {
            node: node.into(),
            instance: "i1".into(),
            version,
            change: change.map(|(u, d)| (user(u), d)),
        }
    }

    fn live(nodes: &[&str]) -> HashSet<String> {
        nodes.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn fields_round_trip_and_bookkeeping_is_not_a_field() {
        for f in [user("ann"), user("a b"), user(""), None] {
            assert_eq!(parse_field(&field_name(&f)), Some(f));
        }
        assert_eq!(parse_field("v"), None);
        assert_eq!(parse_field("i"), None);
        assert_eq!(parse_field("ab"), None);
    }

    #[test]
    fn a_snapshot_holds_what_older_messages_said() {
        let mut rooms = Rooms::new("a");
        rooms.track(Arc::from("r"));
        rooms.set_live(live(&["a", "b"]));
        let changes = rooms.read("r", vec![("b".into(), share("i1", 5, &[("ann", 1)]))]);
        assert_eq!(
            changes,
            vec![Change {
                user: user("ann"),
                delta: 1
            }]
        );
        // Published before the read: already in it.
        assert_eq!(rooms.heard("r", heard("b", 5, Some(("ann", 1)))), None);
        // After it: counted.
        assert_eq!(
            rooms.heard("r", heard("b", 6, Some(("bob", 1)))),
            Some(Outcome::Count(vec![Change {
                user: user("bob"),
                delta: 1
            }]))
        );
        // A restarted node (another instance) is read again.
        let mut restarted = heard("b", 1, Some(("ann", 1)));
        restarted.instance = "i2".into();
        assert_eq!(rooms.heard("r", restarted), Some(Outcome::Reread));
        // A node not live yet (started since the last heartbeat read) is
        // read once it is.
        assert_eq!(rooms.heard("r", heard("c", 9, Some(("ann", 1)))), None);
        let (_, came) = rooms.set_live(live(&["a", "b", "c"]));
        assert!(came);
        // Live but not read yet: read.
        assert_eq!(
            rooms.heard("r", heard("c", 10, Some(("ann", 1)))),
            Some(Outcome::Reread)
        );
    }

    #[test]
    fn a_node_that_drops_out_takes_its_users_and_is_read_when_back() {
        let mut rooms = Rooms::new("a");
        rooms.track(Arc::from("r"));
        rooms.set_live(live(&["a", "b"]));
        rooms.read(
            "r",
            vec![
                ("a".into(), share("i0", 2, &[("ann", 1)])),
                ("b".into(), share("i1", 3, &[("ann", 1), ("bob", 2)])),
            ],
        );
        let (gone, came) = rooms.set_live(live(&["a"]));
        assert!(!came);
        assert_eq!(
            gone,
            vec![(
                Arc::from("r"),
                vec![
                    Change {
                        user: user("ann"),
                        delta: -1
                    },
                    Change {
                        user: user("bob"),
                        delta: -2
                    }
                ]
            )]
        );
        // Its late messages are not counted; its hash is ignored while gone.
        assert_eq!(rooms.heard("r", heard("b", 4, Some(("cy", 1)))), None);
        assert!(rooms
            .read("r", vec![("b".into(), share("i1", 3, &[("bob", 2)]))])
            .iter()
            .all(|c| c.delta < 0));
        let (_, came) = rooms.set_live(live(&["a", "b"]));
        assert!(came, "a node back is read again");
    }

    #[test]
    fn own_writes_carry_growing_versions_and_whole_rewrites_after_failures() {
        let mut rooms = Rooms::new("a");
        rooms.track(Arc::from("r"));
        rooms.track(Arc::from("s"));
        let w1 = rooms.local(
            "r",
            Change {
                user: user("ann"),
                delta: 1,
            },
        );
        let w2 = rooms.local(
            "s",
            Change {
                user: None,
                delta: 1,
            },
        );
        assert!(matches!(w1, Some(Write::Delta { version: 1, .. })));
        assert!(matches!(w2, Some(Write::Delta { version: 2, .. })));
        assert_eq!(
            rooms.local(
                "x",
                Change {
                    user: None,
                    delta: 1
                }
            ),
            None
        );
        rooms.failed("r");
        assert_eq!(rooms.to_rewrite(false), vec![Arc::<str>::from("r")]);
        assert_eq!(
            rooms.whole("r"),
            Some(Write::Whole {
                version: 3,
                counts: vec![(user("ann"), 1)]
            })
        );
        assert!(rooms.to_rewrite(false).is_empty());
        let mut all = rooms.to_rewrite(true);
        all.sort();
        assert_eq!(all, vec![Arc::<str>::from("r"), Arc::from("s")]);
    }
}
