//! The watch registry: which session watches which path, in which mode, and which events a
//! change fires. It mirrors Apache ZooKeeper 3.8's two WatchManagers (data and child), the
//! reference rzk is tested against, quirks included, because clients observe them:
//! - getData/exists set a one-shot watch in the data manager, getChildren in the child
//!   manager; addWatch (either mode) and setWatches' persistent lists set both managers.
//! - A session has ONE mode per path per manager and the last one set wins: a getData watch
//!   on a path with a persistent watch turns it into a one-shot one (3.8's WatcherModeManager).
//! - A change fires the watches on its exact path (one-shot ones are then removed) and the
//!   recursive watches on the path and its ancestors, except for NodeChildrenChanged, which
//!   recursive watches never hear; a session hears one event per change per manager.
//! - checkWatches answers "yes" when ANY session watches the path in that manager (3.8's
//!   `WatchManager.containsWatcher`), or the caller holds a recursive watch there.
//!
//! Not here: delivering events (the driver does), or ordering them against replies.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rzk_proto::{Acl, EventType, WatcherType};

use crate::{path, Trigger, TriggerKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Standard,
    Persistent,
    Recursive,
}

#[derive(Default)]
struct Manager {
    by_path: HashMap<Arc<str>, HashMap<i64, Mode>>,
    by_session: HashMap<i64, HashSet<Arc<str>>>,
    recursive_count: usize,
}

impl Manager {
    fn add(&mut self, path: &str, session: i64, mode: Mode) {
        let key: Arc<str> = match self.by_path.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => Arc::from(path),
        };
        let old = self
            .by_path
            .entry(key.clone())
            .or_default()
            .insert(session, mode);
        if old == Some(Mode::Recursive) {
            self.recursive_count -= 1;
        }
        if mode == Mode::Recursive {
            self.recursive_count += 1;
        }
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
        acl: &Arc<[Acl]>,
        suppress: &HashSet<i64>,
        out: &mut Vec<Fired>,
    ) -> HashSet<i64> {
        let mut notified = HashSet::new();
        let children_changed = event_type == EventType::NodeChildrenChanged;
        let mut unlink = Vec::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            watchers.retain(|&session, mode| match mode {
                Mode::Recursive => {
                    if !children_changed {
                        notified.insert(session);
                    }
                    true
                }
                Mode::Persistent => {
                    notified.insert(session);
                    true
                }
                Mode::Standard => {
                    notified.insert(session);
                    unlink.push(session);
                    false
                }
            });
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
        }
        for session in unlink {
            self.unlink(path, session);
        }
        if self.recursive_count > 0 && !children_changed {
            let mut ancestor = path::parent(path);
            while let Some(p) = ancestor {
                if let Some(watchers) = self.by_path.get(p) {
                    for (&session, &mode) in watchers {
                        if mode == Mode::Recursive {
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
        let event_path: Arc<str> = Arc::from(path);
        for session in sessions {
            out.push(Fired {
                session_id: session,
                event_type,
                path: event_path.clone(),
                acl: acl.clone(),
            });
        }
        notified
    }

    /// 3.8's `containsWatcher`: any session's watch on the path counts.
    fn contains(&self, path: &str, session: i64) -> bool {
        self.by_path.get(path).is_some_and(|w| !w.is_empty())
            || self
                .by_path
                .get(path)
                .and_then(|w| w.get(&session))
                .is_some_and(|m| *m == Mode::Recursive)
    }

    fn remove(&mut self, path: &str, session: i64) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(mode) = watchers.remove(&session) else {
            return false;
        };
        if mode == Mode::Recursive {
            self.recursive_count -= 1;
        }
        if watchers.is_empty() {
            self.by_path.remove(path);
        }
        self.unlink(path, session);
        true
    }

    fn remove_session(&mut self, session: i64) {
        let Some(paths) = self.by_session.remove(&session) else {
            return;
        };
        for path in paths {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                if watchers.remove(&session) == Some(Mode::Recursive) {
                    self.recursive_count -= 1;
                }
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.by_path.values().map(HashMap::len).sum()
    }
}

/// One event to deliver to one session, if the session may READ under `acl` (a one-shot
/// watch is used up either way, as in ZooKeeper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub session_id: i64,
    pub event_type: EventType,
    pub path: Arc<str>,
    pub acl: Arc<[Acl]>,
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
        self.data.add(path, session, Mode::Standard);
    }

    /// getChildren with watch=true.
    pub fn add_child_watch(&mut self, path: &str, session: i64) {
        self.child.add(path, session, Mode::Standard);
    }

    /// addWatch and setWatches' persistent lists: both managers, either mode.
    pub fn add_persistent(&mut self, path: &str, session: i64, recursive: bool) {
        let mode = if recursive {
            Mode::Recursive
        } else {
            Mode::Persistent
        };
        self.data.add(path, session, mode);
        self.child.add(path, session, mode);
    }

    /// Appends the events `trigger` fires, as DataTree's createNode/deleteNode/setData do.
    pub fn fire(&mut self, trigger: &Trigger, out: &mut Vec<Fired>) {
        let none = HashSet::new();
        let p = &trigger.path;
        let parent = path::parent(p).unwrap_or("/");
        match trigger.kind {
            TriggerKind::Created => {
                self.data
                    .trigger(p, EventType::NodeCreated, &trigger.acl, &none, out);
                self.child.trigger(
                    parent,
                    EventType::NodeChildrenChanged,
                    &trigger.parent_acl,
                    &none,
                    out,
                );
            }
            TriggerKind::Deleted => {
                let notified =
                    self.data
                        .trigger(p, EventType::NodeDeleted, &trigger.acl, &none, out);
                self.child
                    .trigger(p, EventType::NodeDeleted, &trigger.acl, &notified, out);
                self.child.trigger(
                    parent,
                    EventType::NodeChildrenChanged,
                    &trigger.parent_acl,
                    &none,
                    out,
                );
            }
            TriggerKind::DataChanged => {
                self.data
                    .trigger(p, EventType::NodeDataChanged, &trigger.acl, &none, out);
            }
        }
    }

    /// checkWatches (3.8 semantics, see the module docs). `None` for a watcher type 3.8 does
    /// not know (it answers MarshallingError).
    pub fn contains(&self, path: &str, session: i64, watcher_type: WatcherType) -> Option<bool> {
        Some(match watcher_type {
            WatcherType::Children => self.child.contains(path, session),
            WatcherType::Data => self.data.contains(path, session),
            WatcherType::Any => {
                self.child.contains(path, session) || self.data.contains(path, session)
            }
            WatcherType::Persistent | WatcherType::PersistentRecursive => return None,
        })
    }

    /// removeWatches: removes the session's watch of any mode from the chosen managers; true
    /// if anything was removed. `None` for a watcher type 3.8 does not know.
    pub fn remove(&mut self, path: &str, session: i64, watcher_type: WatcherType) -> Option<bool> {
        Some(match watcher_type {
            WatcherType::Children => self.child.remove(path, session),
            WatcherType::Data => self.data.remove(path, session),
            WatcherType::Any => {
                let c = self.child.remove(path, session);
                let d = self.data.remove(path, session);
                c || d
            }
            WatcherType::Persistent | WatcherType::PersistentRecursive => return None,
        })
    }

    /// Drops every watch of a session (its connection closed or it expired).
    pub fn remove_session(&mut self, session: i64) {
        self.data.remove_session(session);
        self.child.remove_session(session);
    }

    /// Total watches, counted per (path, session, manager) as ZooKeeper's `zk_watch_count`.
    pub fn watch_count(&self) -> usize {
        self.data.len() + self.child.len()
    }

    /// wchs/wchc/wchp report the data manager only, as ZooKeeper 3.8 does (its
    /// `getWatchesSummary` and friends never look at child watches).
    pub fn data_watch_count(&self) -> usize {
        self.data.len()
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

    fn trigger(kind: TriggerKind, path: &str) -> Trigger {
        Trigger {
            kind,
            path: Arc::from(path),
            acl: Arc::from(Acl::open_unsafe()),
            parent_acl: Arc::from(Acl::open_unsafe()),
        }
    }

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
        let t = || trigger(TriggerKind::DataChanged, "/a");
        assert_eq!(fire(&mut reg, t()).len(), 2);
        assert_eq!(
            fire(&mut reg, t()),
            vec![(2, EventType::NodeDataChanged, "/a".into())]
        );
    }

    #[test]
    fn delete_notifies_each_session_once_and_parent_children_watchers() {
        let mut reg = WatchRegistry::new();
        reg.add_data_watch("/a/b", 1);
        reg.add_child_watch("/a/b", 1);
        reg.add_child_watch("/a", 3);
        let events = fire(&mut reg, trigger(TriggerKind::Deleted, "/a/b"));
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
    fn a_one_shot_watch_replaces_a_persistent_one_as_in_zookeeper_3_8() {
        let mut reg = WatchRegistry::new();
        reg.add_persistent("/a", 1, false);
        reg.add_data_watch("/a", 1);
        let t = || trigger(TriggerKind::DataChanged, "/a");
        assert_eq!(fire(&mut reg, t()).len(), 1);
        assert!(fire(&mut reg, t()).is_empty());
    }

    #[test]
    fn recursive_watch_sees_descendants_but_not_child_lists() {
        let mut reg = WatchRegistry::new();
        reg.add_persistent("/a", 7, true);
        let events = fire(&mut reg, trigger(TriggerKind::Created, "/a/b/c"));
        assert_eq!(events, vec![(7, EventType::NodeCreated, "/a/b/c".into())]);
        assert_eq!(reg.contains("/a", 7, WatcherType::Data), Some(true));
        assert_eq!(
            reg.contains("/a", 7, WatcherType::PersistentRecursive),
            None
        );
        assert_eq!(reg.remove("/a", 7, WatcherType::Any), Some(true));
        assert!(fire(&mut reg, trigger(TriggerKind::Created, "/a/x")).is_empty());
    }
}
