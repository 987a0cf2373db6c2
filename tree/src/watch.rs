//! The watch registry: which session watches which path, in which mode, and which events a
//! change fires. It mirrors ZooKeeper's two WatchManagers (data and child) because the event
//! rules depend on which manager holds a watch:
//! - getData/exists register a one-shot watch in the data manager, getChildren in the child
//!   manager; addWatch PERSISTENT registers in both, PERSISTENT_RECURSIVE in data only.
//! - A change fires every watch on the exact path (one-shot ones are then removed) and the
//!   recursive watches on its ancestors; a session hears one event per change per manager.
//!
//! Not here: delivering events (the driver does), or ordering them against replies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rzk_proto::{EventType, WatcherType};

use crate::{path, Trigger};

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

#[derive(Default)]
struct Manager {
    by_path: HashMap<Arc<str>, HashMap<i64, u8>>,
    by_session: HashMap<i64, HashSet<Arc<str>>>,
    recursive_count: usize,
}

impl Manager {
    fn add(&mut self, path: &str, session: i64, mode: u8) {
        let key: Arc<str> = match self.by_path.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => Arc::from(path),
        };
        let modes = self
            .by_path
            .entry(key.clone())
            .or_default()
            .entry(session)
            .or_insert(0);
        if mode == RECURSIVE && *modes & RECURSIVE == 0 {
            self.recursive_count += 1;
        }
        *modes |= mode;
        self.by_session.entry(session).or_default().insert(key);
    }

    fn unlink(&mut self, path: &str, session: i64) {
        if let Some(paths) = self.by_session.get_mut(&session) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_session.remove(&session);
            }
        }
    }

    /// Fires the watches a change at `path` triggers; returns the sessions notified.
    fn trigger(
        &mut self,
        path: &str,
        event_type: EventType,
        suppress: &HashSet<i64>,
        out: &mut Vec<Fired>,
    ) -> HashSet<i64> {
        let mut notified = HashSet::new();
        let event_path: Arc<str> = Arc::from(path);
        let mut unlink = Vec::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            watchers.retain(|&session, modes| {
                notified.insert(session);
                *modes &= !STANDARD;
                if *modes == 0 {
                    unlink.push(session);
                }
                *modes != 0
            });
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
        }
        for session in unlink {
            self.unlink(path, session);
        }
        if self.recursive_count > 0 {
            let mut ancestor = path::parent(path);
            while let Some(p) = ancestor {
                if let Some(watchers) = self.by_path.get(p) {
                    for (&session, &modes) in watchers {
                        if modes & RECURSIVE != 0 {
                            notified.insert(session);
                        }
                    }
                }
                ancestor = path::parent(p);
            }
        }
        let mut sessions: Vec<i64> = notified
            .iter()
            .copied()
            .filter(|s| !suppress.contains(s))
            .collect();
        // Deterministic delivery order helps tests and the simulator; clients only see their own.
        sessions.sort_unstable();
        for session in sessions {
            out.push(Fired {
                session_id: session,
                event_type,
                path: event_path.clone(),
            });
        }
        notified
    }

    fn contains(&self, path: &str, session: i64, mode: Option<u8>) -> bool {
        self.by_path
            .get(path)
            .and_then(|w| w.get(&session))
            .is_some_and(|&m| mode.is_none_or(|mode| m & mode != 0))
    }

    fn remove(&mut self, path: &str, session: i64, mode: Option<u8>) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(modes) = watchers.get_mut(&session) else {
            return false;
        };
        let old = *modes;
        let new = match mode {
            Some(mode) => old & !mode,
            None => 0,
        };
        if old & RECURSIVE != 0 && new & RECURSIVE == 0 {
            self.recursive_count -= 1;
        }
        if new == 0 {
            watchers.remove(&session);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            self.unlink(path, session);
        } else {
            *modes = new;
        }
        old != new
    }

    fn remove_session(&mut self, session: i64) {
        let Some(paths) = self.by_session.remove(&session) else {
            return;
        };
        for path in paths {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                if let Some(modes) = watchers.remove(&session) {
                    if modes & RECURSIVE != 0 {
                        self.recursive_count -= 1;
                    }
                }
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }
}

/// One event to deliver to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub session_id: i64,
    pub event_type: EventType,
    pub path: Arc<str>,
}

#[derive(Default)]
pub struct WatchRegistry {
    data: Manager,
    child: Manager,
}

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// getData/exists with watch=true.
    pub fn add_data_watch(&mut self, path: &str, session: i64) {
        self.data.add(path, session, STANDARD);
    }

    /// getChildren with watch=true.
    pub fn add_child_watch(&mut self, path: &str, session: i64) {
        self.child.add(path, session, STANDARD);
    }

    /// addWatch: PERSISTENT goes to both managers, PERSISTENT_RECURSIVE to data only.
    pub fn add_persistent(&mut self, path: &str, session: i64, recursive: bool) {
        if recursive {
            self.data.add(path, session, RECURSIVE);
        } else {
            self.data.add(path, session, PERSISTENT);
            self.child.add(path, session, PERSISTENT);
        }
    }

    /// Appends the events `trigger` fires, as DataTree's createNode/deleteNode/setData do.
    pub fn fire(&mut self, trigger: &Trigger, out: &mut Vec<Fired>) {
        let none = HashSet::new();
        match trigger {
            Trigger::Created(p) => {
                self.data.trigger(p, EventType::NodeCreated, &none, out);
                let parent = path::parent(p).unwrap_or("/");
                self.child
                    .trigger(parent, EventType::NodeChildrenChanged, &none, out);
            }
            Trigger::Deleted(p) => {
                let notified = self.data.trigger(p, EventType::NodeDeleted, &none, out);
                self.child.trigger(p, EventType::NodeDeleted, &notified, out);
                let parent = path::parent(p).unwrap_or("/");
                self.child
                    .trigger(parent, EventType::NodeChildrenChanged, &none, out);
            }
            Trigger::DataChanged(p) => {
                self.data.trigger(p, EventType::NodeDataChanged, &none, out);
            }
        }
    }

    /// checkWatches: does `session` hold a watch of this type on `path`?
    pub fn contains(&self, path: &str, session: i64, watcher_type: WatcherType) -> bool {
        match watcher_type {
            WatcherType::Children => self.child.contains(path, session, Some(STANDARD)),
            WatcherType::Data => self.data.contains(path, session, Some(STANDARD)),
            WatcherType::Persistent => self.data.contains(path, session, Some(PERSISTENT)),
            WatcherType::PersistentRecursive => {
                self.data.contains(path, session, Some(RECURSIVE))
            }
            WatcherType::Any => {
                self.child.contains(path, session, None) || self.data.contains(path, session, None)
            }
        }
    }

    /// removeWatches: true if anything was removed.
    pub fn remove(&mut self, path: &str, session: i64, watcher_type: WatcherType) -> bool {
        match watcher_type {
            WatcherType::Children => self.child.remove(path, session, Some(STANDARD)),
            WatcherType::Data => self.data.remove(path, session, Some(STANDARD)),
            WatcherType::Persistent => {
                let c = self.child.remove(path, session, Some(PERSISTENT));
                let d = self.data.remove(path, session, Some(PERSISTENT));
                c || d
            }
            WatcherType::PersistentRecursive => self.data.remove(path, session, Some(RECURSIVE)),
            WatcherType::Any => {
                let c = self.child.remove(path, session, None);
                let d = self.data.remove(path, session, None);
                c || d
            }
        }
    }

    /// Drops every watch of a session (its connection closed or it expired).
    pub fn remove_session(&mut self, session: i64) {
        self.data.remove_session(session);
        self.child.remove_session(session);
    }

    /// Total watches, counted per (path, session, manager) as ZooKeeper's `zk_watch_count`.
    pub fn watch_count(&self) -> usize {
        self.data.by_path.values().map(HashMap::len).sum::<usize>()
            + self.child.by_path.values().map(HashMap::len).sum::<usize>()
    }

    /// wchs/wchc/wchp report the data manager only, as ZooKeeper 3.8 does (its
    /// `getWatchesSummary` and friends never look at child watches).
    pub fn data_watch_count(&self) -> usize {
        self.data.by_path.values().map(HashMap::len).sum()
    }

    pub fn data_path_count(&self) -> usize {
        self.data.by_path.len()
    }

    pub fn data_session_count(&self) -> usize {
        self.data.by_session.len()
    }

    /// Paths with data/exist watches, per session (for `wchc`), sorted.
    pub fn data_by_session(&self) -> Vec<(i64, Vec<Arc<str>>)> {
        let mut out: Vec<(i64, Vec<Arc<str>>)> = self
            .data
            .by_session
            .iter()
            .map(|(s, paths)| {
                let mut p: Vec<_> = paths.iter().cloned().collect();
                p.sort();
                (*s, p)
            })
            .collect();
        out.sort_by_key(|(s, _)| *s);
        out
    }

    /// Sessions with data/exist watches, per path (for `wchp`), sorted.
    pub fn data_by_path(&self) -> Vec<(Arc<str>, Vec<i64>)> {
        let mut out: Vec<(Arc<str>, Vec<i64>)> = self
            .data
            .by_path
            .iter()
            .map(|(p, sessions)| {
                let mut s: Vec<_> = sessions.keys().copied().collect();
                s.sort_unstable();
                (p.clone(), s)
            })
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(reg: &mut WatchRegistry, t: Trigger) -> Vec<(i64, EventType, String)> {
        let mut out = Vec::new();
        reg.fire(&t, &mut out);
        out.into_iter()
            .map(|f| (f.session_id, f.event_type, f.path.to_string()))
            .collect()
    }

    #[test]
    fn one_shot_fires_once_persistent_keeps_firing() {
        let mut reg = WatchRegistry::new();
        reg.add_data_watch("/a", 1);
        reg.add_persistent("/a", 2, false);
        let t = || Trigger::DataChanged(Arc::from("/a"));
        assert_eq!(fire(&mut reg, t()).len(), 2);
        assert_eq!(fire(&mut reg, t()), vec![(2, EventType::NodeDataChanged, "/a".into())]);
    }

    #[test]
    fn delete_notifies_each_session_once_and_parent_children_watchers() {
        let mut reg = WatchRegistry::new();
        reg.add_data_watch("/a/b", 1);
        reg.add_child_watch("/a/b", 1);
        reg.add_child_watch("/a", 3);
        let events = fire(&mut reg, Trigger::Deleted(Arc::from("/a/b")));
        assert_eq!(
            events,
            vec![
                (1, EventType::NodeDeleted, "/a/b".into()),
                (3, EventType::NodeChildrenChanged, "/a".into()),
            ]
        );
        assert_eq!(reg.watch_count(), 0);
    }

    #[test]
    fn recursive_watch_sees_descendants_but_not_child_lists() {
        let mut reg = WatchRegistry::new();
        reg.add_persistent("/a", 7, true);
        let events = fire(&mut reg, Trigger::Created(Arc::from("/a/b/c")));
        assert_eq!(events, vec![(7, EventType::NodeCreated, "/a/b/c".into())]);
        assert!(reg.contains("/a", 7, WatcherType::PersistentRecursive));
        assert!(!reg.contains("/a", 7, WatcherType::Data));
        assert!(reg.remove("/a", 7, WatcherType::Any));
        assert!(fire(&mut reg, Trigger::Created(Arc::from("/a/x"))).is_empty());
    }
}
