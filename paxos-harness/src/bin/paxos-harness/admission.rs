//! Who may hold one of the client port's connections (pure; the server drives it).
//!
//! The port takes at most `cap` connections. When a new one arrives at the cap, one makes
//! room: first a connection that has never completed a request (the oldest such), else the
//! one idle longest; one waiting for its answer never. A flood of connections opened to sit
//! idle, or to hold a partial line, so churns among itself instead of starving the clients
//! that use the port. Only when every connection is mid-request is the newcomer refused. (A
//! flood that sends one real request per connection ranks with real clients by idleness:
//! that one needs client authentication.)

use std::collections::BTreeMap;
use tokio::time::Instant;

/// One admitted connection, carrying `T` (e.g. what closes it).
#[derive(Debug)]
struct Slot<T> {
    /// When it last finished a request (or was admitted).
    last_active: Instant,
    /// Waiting for an answer: not evictable.
    busy: bool,
    /// Has completed a request: evicted only after every connection that has not.
    served: bool,
    handle: T,
}

/// What [`Admission::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<T> {
    /// Admitted as `id`; `evicted` is the handle of the connection that made room, to close.
    In { id: u64, evicted: Option<T> },
    /// At the cap with every connection mid-request.
    Refused,
}

/// The client port's connections.
#[derive(Debug)]
pub(crate) struct Admission<T> {
    cap: usize,
    next: u64,
    slots: BTreeMap<u64, Slot<T>>,
}

impl<T> Admission<T> {
    /// At most `cap` connections (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Admission {
            cap: cap.max(1),
            next: 0,
            slots: BTreeMap::new(),
        }
    }

    /// A new connection at `now`, closed by `handle` if it is evicted later.
    pub(crate) fn admit(&mut self, now: Instant, handle: T) -> Admit<T> {
        let evicted = if self.slots.len() >= self.cap {
            // Ties (same instant) go to the older id: the one admitted first leaves first.
            let victim = self
                .slots
                .iter()
                .filter(|(_, s)| !s.busy)
                .min_by_key(|(id, s)| (s.served, s.last_active, **id))
                .map(|(id, _)| *id);
            match victim.and_then(|v| self.slots.remove(&v)) {
                Some(slot) => Some(slot.handle),
                None => return Admit::Refused,
            }
        } else {
            None
        };
        self.next += 1;
        self.slots.insert(
            self.next,
            Slot {
                last_active: now,
                busy: false,
                served: false,
                handle,
            },
        );
        Admit::In {
            id: self.next,
            evicted,
        }
    }

    /// Connection `id` read a request and waits for its answer.
    pub(crate) fn busy(&mut self, id: u64) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.busy = true;
        }
    }

    /// Connection `id` sent its answer at `now`.
    pub(crate) fn idle(&mut self, id: u64, now: Instant) {
        if let Some(s) = self.slots.get_mut(&id) {
            s.busy = false;
            s.served = true;
            s.last_active = now;
        }
    }

    /// Connection `id` closed (a no-op if it was evicted).
    pub(crate) fn leave(&mut self, id: u64) {
        self.slots.remove(&id);
    }

    /// Connections held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn under_the_cap_everyone_is_admitted() {
        let t = Instant::now();
        let mut a = Admission::new(3);
        for i in 1..=3 {
            assert_eq!(
                a.admit(at(t, i), i),
                Admit::In {
                    id: i,
                    evicted: None
                }
            );
        }
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn at_the_cap_connections_that_never_completed_a_request_make_room_first() {
        let t = Instant::now();
        let mut a = Admission::new(3);
        let client = match a.admit(at(t, 0), "client".to_string()) {
            Admit::In { id, .. } => id,
            Admit::Refused => unreachable!(),
        };
        // The client was admitted first and finished its last request long ago, yet every
        // newer connection that never completed one leaves before it.
        a.busy(client);
        a.idle(client, at(t, 1));
        a.admit(at(t, 2), "idle-2".to_string());
        a.admit(at(t, 3), "idle-3".to_string());
        for (k, expect) in [(4, "idle-2"), (5, "idle-3"), (6, "flood-4"), (7, "flood-5")] {
            match a.admit(at(t, k), format!("flood-{k}")) {
                Admit::In { evicted, .. } => assert_eq!(evicted.as_deref(), Some(expect), "at {k}"),
                Admit::Refused => panic!("refused at {k}"),
            }
        }
        assert_eq!(a.len(), 3);
        // Among served connections, the one idle longest leaves first.
        let mut b = Admission::new(2);
        b.admit(at(t, 0), "old");
        b.admit(at(t, 1), "recent");
        b.idle(2, at(t, 2));
        b.idle(1, at(t, 3));
        assert_eq!(
            b.admit(at(t, 4), "new"),
            Admit::In {
                id: 3,
                evicted: Some("recent")
            }
        );
        // A tie in time goes to the connection admitted first.
        let mut c = Admission::new(1);
        c.admit(at(t, 0), "first");
        assert_eq!(
            c.admit(at(t, 0), "second"),
            Admit::In {
                id: 2,
                evicted: Some("first")
            }
        );
    }

    #[test]
    fn a_connection_waiting_for_its_answer_is_never_evicted() {
        let t = Instant::now();
        let mut a = Admission::new(2);
        a.admit(at(t, 0), 1);
        a.admit(at(t, 1), 2);
        a.busy(1);
        a.busy(2);
        assert_eq!(a.admit(at(t, 2), 3), Admit::Refused);
        a.idle(2, at(t, 3));
        assert_eq!(
            a.admit(at(t, 4), 3),
            Admit::In {
                id: 3,
                evicted: Some(2)
            }
        );
        // An evicted or closed id is forgotten; touching it changes nothing.
        a.busy(2);
        a.idle(2, at(t, 5));
        a.leave(2);
        assert_eq!(a.len(), 2);
        a.leave(1);
        assert_eq!(a.len(), 1);
    }
}
