//! The core thread: owns the sans-IO pipeline `Core` and carries out its actions with real
//! channels, the log stage and the event loops. Everything the core decides goes through here
//! in one order: the new tree version is published, then the outputs go to the loops, then
//! the version is marked delivered (the pipeline's roles.rs says why).
//!
//! The `Driver` sits behind a mutex so that an event loop can run it on its own thread while
//! the core thread is idle (`RunToCompletion`): a lone write is then prepped, logged (inline,
//! see `INLINE_MAX_TXNS`), applied and answered by the loop that read it. The core thread
//! still handles everything that arrives through its channels, ticks and shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;
use rzk_net::{
    clocks, loop_of, mono_ms, now_ms, CoreHost, CoreInbox, LoopHandle, Shared, ToCore, ToLoop,
};
use rzk_pipeline::batch::BatchLimits;
use rzk_pipeline::{Actions, Core, Input, Output};
use rzk_session::Now;
use tracing::{info, warn};

use crate::config::Config;
use crate::fourlw;
use crate::http::CoreCall;
use crate::log_stage::{self, Durable, LogCommand, SharedLog};
use crate::stages::StageClock;
use crate::storage::{SnapshotJob, Snapshotter};

pub struct Driver {
    pub core: Core,
    pub config: Config,
    pub shared: Arc<Shared>,
    pub to_log: Sender<LogCommand>,
    pub loops: Vec<LoopHandle>,
    pub snapshots: SnapshotPolicy,
    pub clock: StageClock,
    /// The log's writer, for writing small batches on the thread running the core when
    /// nothing is in flight at the log thread (None when a batching delay is configured).
    pub inline_log: Option<SharedLog>,
    /// The batching caps, which an inline write honours too.
    pub batch_limits: BatchLimits,
    /// The last zxid handed to the log, and the last it reported durable.
    pub handed_zxid: i64,
    pub durable_zxid: i64,
    /// Which loops got outputs in the current `carry_out` (scratch, kept to reuse).
    pub woken: Vec<bool>,
    /// Set once shutdown has stopped the log and snapshot threads: nothing more is run.
    pub stopped: bool,
    /// What srvr says under `Mode:`; None while an ensemble server has no leader.
    pub mode: Option<&'static str>,
}

/// The core thread's side: the driver and the channels it waits on.
pub struct CoreThread {
    pub driver: Arc<Mutex<Driver>>,
    pub from_net: CoreInbox,
    pub durable: Receiver<Durable>,
    /// Questions from the HTTP endpoints, answered between batches.
    pub calls: Receiver<CoreCall>,
}

/// Lets an event loop run the driver on its own thread (see the module docs).
pub struct RunToCompletion {
    pub driver: Arc<Mutex<Driver>>,
    pub from_net: CoreInbox,
    pub durable: Receiver<Durable>,
}

impl CoreHost for RunToCompletion {
    fn try_run(&self, caller_loop: usize, messages: &mut Vec<ToCore>) -> bool {
        let Some(mut driver) = self.driver.try_lock() else {
            return false;
        };
        // Something a loop sent earlier may still be queued, or taken by the core thread
        // and not yet handled: running ahead of it could reorder a session's requests.
        if driver.stopped || !self.from_net.all_handled() {
            return false;
        }
        let mut actions = Actions::default();
        if driver.take_durable(&self.durable, &mut actions) {
            // Replies to durable writes leave before new requests are prepped.
            driver.carry_out(&mut actions, Some(caller_loop));
        }
        let now = (Instant::now(), clocks());
        for message in messages.drain(..) {
            driver.handle(message, now, &mut actions);
        }
        driver.carry_out(&mut actions, Some(caller_loop));
        true
    }
}

/// Batches up to this size are written by the thread running the core (the core thread, or
/// an event loop under `RunToCompletion`) when the log is idle. A larger batch means load,
/// and then overlapping the next batch's prep with this one's sync (on the log thread) is
/// worth two thread hand-offs. Core only: a leader's core must keep taking acks and
/// heartbeats while a sync runs, so the ensemble turns this (and run-to-completion) off.
const INLINE_MAX_TXNS: usize = 8;

/// When to snapshot: after a randomised number of transactions, as ZooKeeper does (between
/// snapCount/2 and snapCount), so the servers of an ensemble do not all snapshot at once.
pub struct SnapshotPolicy {
    pub snapshotter: Snapshotter,
    pub snap_count: u64,
    pub last_snapshot_zxid: i64,
    pub threshold: u64,
    pub rng: u64,
}

impl SnapshotPolicy {
    pub fn new(
        snapshotter: Snapshotter,
        snap_count: u64,
        last_snapshot_zxid: i64,
        seed: u64,
    ) -> Self {
        let mut policy = SnapshotPolicy {
            snapshotter,
            snap_count: snap_count.max(2),
            last_snapshot_zxid,
            threshold: 0,
            rng: seed | 1,
        };
        policy.roll();
        policy
    }

    fn roll(&mut self) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = self.snap_count / 2;
        self.threshold = half + self.rng % half.max(1);
    }

    /// Hands a snapshot job to the snapshot thread if one is due and none is running.
    pub fn maybe_snapshot(&mut self, core: &Core, force: bool) {
        let zxid = core.released().last_zxid();
        let due = (zxid - self.last_snapshot_zxid) as u64 >= self.threshold;
        if !(due || force) || zxid == self.last_snapshot_zxid {
            return;
        }
        if self.snapshotter.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let job = SnapshotJob {
            tree: core.released().clone(),
            sessions: core.committed_sessions(),
        };
        if self.snapshotter.jobs.try_send(job).is_err() {
            self.snapshotter.busy.store(false, Ordering::Release);
            return;
        }
        self.last_snapshot_zxid = zxid;
        self.roll();
    }
}

/// How long a graceful shutdown waits for in-flight writes to become durable and be answered.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

impl CoreThread {
    /// Runs until shutdown; returns the snapshot thread so the caller can wait for it.
    pub fn run(self) -> Option<std::thread::JoinHandle<()>> {
        let CoreThread {
            driver,
            from_net,
            durable,
            mut calls,
        } = self;
        let tick_ms = driver.lock().config.tick_time_ms as u64;
        let tick_every = Duration::from_millis((tick_ms / 4).clamp(10, 250));
        let mut next_tick = Instant::now() + tick_every;
        let mut actions = Actions::default();
        let mut shutdown_started: Option<Instant> = None;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            // Waits without the lock, so that a loop can run the driver meanwhile.
            let event = select! {
                recv(from_net.rx) -> message => match message {
                    Ok(message) => Event::Net(message),
                    Err(_) => Event::Stop,
                },
                recv(durable) -> message => match message {
                    Ok(message) => Event::Durable(message),
                    Err(_) => {
                        warn!("log stage stopped; no further write can be acknowledged");
                        Event::Stop
                    }
                },
                recv(calls) -> call => match call {
                    Ok(call) => Event::Call(call),
                    // Both endpoints are off (or gone): stop selecting on a closed channel,
                    // which would be ready forever.
                    Err(_) => {
                        calls = crossbeam_channel::never();
                        Event::Timeout
                    }
                },
                default(timeout) => Event::Timeout,
            };
            let mut d = driver.lock();
            // One clock read for all messages taken in this pass.
            let now = (Instant::now(), clocks());
            match event {
                Event::Net(message) => {
                    d.handle(message, now, &mut actions);
                    from_net.handled();
                }
                Event::Durable(message) => d.durable(message, &mut actions),
                Event::Call(call) => call(&d.context()),
                Event::Stop => return d.stop(),
                Event::Timeout => {}
            }
            // Replies to durable writes leave before newly queued requests are prepped: their
            // clients have waited longest.
            d.take_durable(&durable, &mut actions);
            d.carry_out(&mut actions, None);
            // Take everything already queued before handing a batch to the log: this is where
            // group commit gets its batches when the log is busy.
            while let Ok(message) = from_net.rx.try_recv() {
                d.handle(message, now, &mut actions);
                from_net.handled();
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + tick_every;
                if shutdown_started.is_none() {
                    d.core.step(clocks(), Input::Tick, &mut actions);
                }
            }
            d.carry_out(&mut actions, None);
            if d.shared.shutting_down.load(Ordering::Relaxed) {
                let started = *shutdown_started.get_or_insert_with(|| {
                    info!(
                        outstanding = d.core.outstanding_count(),
                        "shutting down: finishing in-flight requests"
                    );
                    Instant::now()
                });
                if d.core.outstanding_count() == 0 || started.elapsed() > SHUTDOWN_DRAIN {
                    for l in &d.loops {
                        l.send(ToLoop::Shutdown);
                    }
                    return d.stop();
                }
            }
        }
    }
}

enum Event {
    Net(ToCore),
    Durable(Durable),
    Call(CoreCall),
    Stop,
    Timeout,
}

impl Driver {
    /// Ends the log and snapshot threads once their queues drain (by closing their
    /// channels); nothing runs the driver afterwards.
    pub(crate) fn stop(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.stopped = true;
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.to_log, closed));
        self.snapshots.snapshotter.stop()
    }

    pub(crate) fn context(&self) -> fourlw::Context<'_> {
        fourlw::Context {
            core: &self.core,
            shared: &self.shared,
            config: &self.config,
            now_ms: now_ms(),
            mono_ms: mono_ms(),
            mode: self.mode,
            quorum: None,
        }
    }

    fn fits_inline(&self, batch: &[rzk_proto::Txn]) -> bool {
        batch.len() <= INLINE_MAX_TXNS.min(self.batch_limits.max_txns)
            && batch.iter().map(rzk_proto::Txn::encoded_len).sum::<usize>()
                <= self.batch_limits.max_bytes
    }

    /// The server is standalone, a leader whose quorum is itself: what its log made durable
    /// is committed.
    fn durable(&mut self, durable: Durable, actions: &mut Actions) {
        self.durable_zxid = self.durable_zxid.max(durable.zxid);
        self.clock.durable(durable.zxid, durable.at, Instant::now());
        self.core
            .step(clocks(), Input::Committed { zxid: durable.zxid }, actions);
    }

    /// Releases whatever the log reported durable meanwhile; false if it reported nothing.
    fn take_durable(&mut self, reports: &Receiver<Durable>, actions: &mut Actions) -> bool {
        let mut any = false;
        while let Ok(durable) = reports.try_recv() {
            self.durable(durable, actions);
            any = true;
        }
        any
    }

    /// Handles one message from a loop; `now` (an Instant for stage timing, and the core's two
    /// clocks) is when the pass that took it began.
    pub(crate) fn handle(
        &mut self,
        message: ToCore,
        (now, clocks): (Instant, Now),
        actions: &mut Actions,
    ) {
        match message {
            ToCore::Input(input) => {
                match &input {
                    Input::Request { conn, .. } => self.clock.taken(*conn, now),
                    Input::Disconnected { conn } => self.clock.disconnected(*conn),
                    _ => {}
                }
                self.core.step(clocks, input, actions)
            }
            ToCore::FourLetter {
                conn,
                word,
                argument,
                ..
            } => {
                let text = fourlw::render(word, argument, &self.context());
                self.loops[loop_of(conn)].send(ToLoop::Text { conn, text });
            }
        }
    }

    /// Carries out the core's actions. Outputs for `caller_loop` (a loop running the driver
    /// on its own thread) are queued without waking it: it drains them when this returns.
    pub(crate) fn carry_out(&mut self, actions: &mut Actions, caller_loop: Option<usize>) {
        for (session, timeout_ms) in actions.expired.drain(..) {
            rzk_metrics::metrics().sessions_expired.inc();
            info!(
                session = format_args!("{session:#x}"),
                timeout_ms, "session expired: its timeout passed without a heartbeat"
            );
        }
        if let Some(last) = actions.append.last().map(|t| t.zxid) {
            // The batch's end is the only tree the core keeps for it (see pipeline's roles.rs).
            self.core.seal_batch();
            self.clock.batch_handed(last, Instant::now());
            let batch = std::mem::take(&mut actions.append);
            let idle = self.durable_zxid >= self.handed_zxid;
            self.handed_zxid = last;
            match &self.inline_log {
                Some(log) if idle && self.fits_inline(&batch) => {
                    // Released at once: its replies go out with this carry_out's outputs.
                    let written = log_stage::lock(log).write(&batch);
                    if let Some(durable) = written {
                        self.durable(durable, actions);
                    }
                }
                _ => {
                    if self.to_log.send(LogCommand::Append(batch)).is_err() {
                        warn!(
                            "log stage is gone; dropping a batch that will never be acknowledged"
                        );
                    }
                }
            }
        }
        // Publish before the replies go out (a reply promises its write is readable), mark
        // delivered after (see pipeline's roles.rs).
        let published_zxid = actions.publish.take().map(|tree| {
            let zxid = tree.last_zxid();
            self.shared.published.store(Arc::new(tree));
            zxid
        });
        let mut woken = std::mem::take(&mut self.woken);
        woken.clear();
        woken.resize(self.loops.len(), false);
        let now = Instant::now();
        for output in actions.outputs.drain(..) {
            let (index, stages) = match &output {
                Output::Send {
                    conn,
                    reply: true,
                    zxid,
                    ..
                } => (loop_of(*conn), self.clock.reply(*conn, *zxid, now)),
                Output::Send { conn, .. }
                | Output::Established { conn, .. }
                | Output::Close { conn, .. } => (loop_of(*conn), None),
            };
            if self.loops[index]
                .tx
                .send(ToLoop::Output(output, stages))
                .is_ok()
            {
                woken[index] = true;
            }
        }
        self.clock.retire();
        if let Some(zxid) = published_zxid {
            self.shared.delivered_zxid.store(zxid, Ordering::Release);
            self.snapshots.maybe_snapshot(&self.core, false);
        }
        for (index, w) in woken.iter().enumerate() {
            if *w && Some(index) != caller_loop {
                let _ = self.loops[index].waker.wake();
            }
        }
        self.woken = woken;
    }
}
