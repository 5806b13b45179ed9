//! The one journal every multi-step operation runs on (the model is
//! `berth_core::journal`): each step is recorded before it acts, the effect
//! that takes a change back is persisted before the change is made, and the
//! commit writes the operation's state change and its remaining forward work
//! in one transaction. Failing — or found cut short at start-up — an
//! operation's undo log is replayed in reverse; a committed one's forward
//! log is worked off. An effect that needs the engine while it is away keeps
//! its entry open, to be retried when the engine answers again.
//!
//! The journal knows no capability: what an effect does is the
//! [`EffectRunner`]'s business (the daemon's `effects` module, which knows
//! the engine, the disk, systemd units and SRA configurations).

pub mod crash;

use crate::fs::{blocking, TaskFailed};
use async_trait::async_trait;
use berth_core::journal::{Effect, Entry, OperationKind, Phase, Subject};
use berth_core::ErrorKind;
use berth_store::{AppChange, NewEntry, Store, StoreError};
use crash::{CrashPoints, Halted};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Halted(#[from] Halted),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl JournalError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            JournalError::Store(e) => e.kind(),
            JournalError::Halted(_) | JournalError::Task(_) => ErrorKind::Internal,
        }
    }

    pub fn is_halted(&self) -> bool {
        matches!(self, JournalError::Halted(_))
    }
}

/// Why an effect could not be done.
#[derive(Debug, Clone)]
pub struct EffectError {
    /// The engine is away: keep the effect and try again later.
    pub retry: bool,
    pub message: String,
}

impl EffectError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self { retry: true, message: message.into() }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self { retry: false, message: message.into() }
    }

    /// The engine being away is worth a retry; anything else is not.
    pub fn engine(e: berth_core::engine::EngineError) -> Self {
        Self { retry: e.is_unavailable(), message: e.to_string() }
    }
}

/// Carries out effects; idempotent, so an effect may be repeated after a crash.
#[async_trait]
pub trait EffectRunner: Send + Sync + 'static {
    /// `entry` is the journal entry the effect belongs to.
    async fn apply(&self, effect: &Effect, entry: i64) -> Result<(), EffectError>;
}

/// How replaying a log ended.
#[derive(Debug)]
pub enum Settled {
    /// The entry is closed (rolled back or done).
    Closed,
    /// An effect needs the engine, which is away; the entry stays open.
    Waiting { effect: String, reason: String },
    /// A crash point halted it (unit tests).
    Halted(Halted),
    /// The store refused a write.
    Failed(JournalError),
}

impl Settled {
    pub fn is_closed(&self) -> bool {
        matches!(self, Settled::Closed)
    }
}

/// An operation under way: its entry, the step reached and the undo log.
#[derive(Debug)]
pub struct Op {
    pub id: i64,
    pub kind: OperationKind,
    subject: String,
    step: String,
    undo: Vec<Effect>,
    context: serde_json::Value,
    _claim: Claim,
}

type Claimed = Arc<Mutex<HashSet<i64>>>;

/// An entry this process is working on (its operation's task, or a
/// replay): while it is held, resuming the open entries — as happens when
/// the engine comes back — leaves that entry alone instead of undoing a
/// live operation under its feet. Dropped, it is released.
#[derive(Debug)]
struct Claim {
    claimed: Claimed,
    id: i64,
}

impl Claim {
    fn take(claimed: &Claimed, id: i64) -> Option<Claim> {
        let fresh = claimed.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
        fresh.then(|| Claim { claimed: claimed.clone(), id })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claimed.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl Op {
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The kind's record as last written.
    pub fn context(&self) -> &serde_json::Value {
        &self.context
    }
}

pub struct Journal {
    store: Store,
    crash: CrashPoints,
    effects: OnceLock<Arc<dyn EffectRunner>>,
    events: OnceLock<Arc<crate::events::Events>>,
    claimed: Claimed,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("crash", &self.crash).finish_non_exhaustive()
    }
}

fn to_value<C: Serialize>(context: &C) -> serde_json::Value {
    // berth's own plain records always serialise.
    serde_json::to_value(context).unwrap_or_default()
}

impl Journal {
    pub fn new(store: Store, crash: CrashPoints) -> Self {
        Self { store, crash, effects: OnceLock::new(), events: OnceLock::new(), claimed: Claimed::default() }
    }

    /// Wires the event log in: every begin, step, commit and end is an event.
    pub fn set_events(&self, events: Arc<crate::events::Events>) {
        let _ = self.events.set(events);
    }

    fn emit(&self, what: &str, id: i64, kind: OperationKind, subject: &str, extra: serde_json::Value) {
        if let Some(events) = self.events.get() {
            let mut data = serde_json::json!({ "operation": id, "kind": kind.as_str() });
            if let (Some(data), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
                data.extend(extra);
            }
            events.emit(&format!("operation.{what}"), subject, data);
        }
    }

    /// Wires the effect runner in (once, when the daemon is assembled).
    pub fn set_effects(&self, runner: Arc<dyn EffectRunner>) {
        let _ = self.effects.set(runner);
    }

    pub fn crash_points(&self) -> &CrashPoints {
        &self.crash
    }

    pub fn reach(&self, point: &str) -> Result<(), JournalError> {
        Ok(self.crash.reach(point)?)
    }

    async fn db<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let store = self.store.clone();
        blocking(what, move || f(&store).map_err(JournalError::from)).await
    }

    /// Opens an operation that commits at its end (it is undone if it fails).
    pub async fn begin<C: Serialize>(
        &self,
        kind: OperationKind,
        subject: &Subject,
        context: &C,
        undo: Vec<Effect>,
        app: AppChange,
    ) -> Result<Op, JournalError> {
        let (key, context) = (subject.key(), to_value(context));
        let (stored, log) = (context.clone(), undo.clone());
        let id = self
            .db("opening a journal entry", move |s| {
                s.begin(NewEntry {
                    kind,
                    subject: &key,
                    phase: Phase::Running,
                    context: &stored,
                    undo: &log,
                    forward: &[],
                    app,
                })
            })
            .await?;
        tracing::info!(operation = id, kind = kind.as_str(), subject = %subject.key(), "operation begins");
        self.emit("begun", id, kind, &subject.key(), serde_json::json!({}));
        // A new id: nobody else can hold it.
        let claim = Claim::take(&self.claimed, id).expect("a new entry is unclaimed");
        let subject = subject.key();
        Ok(Op { id, kind, subject, step: berth_core::journal::ACCEPTED.into(), undo, context, _claim: claim })
    }

    /// Opens an operation that is committed from the start: its whole plan is
    /// forward work, finished even across a crash. Run it with [`Journal::finish`].
    pub async fn begin_committed<C: Serialize>(
        &self,
        kind: OperationKind,
        subject: &Subject,
        context: &C,
        forward: Vec<Effect>,
        app: AppChange,
    ) -> Result<i64, JournalError> {
        let (key, context) = (subject.key(), to_value(context));
        let id = self
            .db("opening a journal entry", move |s| {
                s.begin(NewEntry {
                    kind,
                    subject: &key,
                    phase: Phase::Committed,
                    context: &context,
                    undo: &[],
                    forward: &forward,
                    app,
                })
            })
            .await?;
        tracing::info!(operation = id, kind = kind.as_str(), subject = %subject.key(), "operation begins (committed)");
        self.emit("committed", id, kind, &subject.key(), serde_json::json!({}));
        Ok(id)
    }

    /// Records the next step, its context, and the effects that take it back,
    /// before the step acts.
    pub async fn step<C: Serialize>(
        &self,
        op: &mut Op,
        step: &str,
        context: &C,
        undo: Vec<Effect>,
    ) -> Result<(), JournalError> {
        self.reach(&format!("{}:before_{step}", op.kind.as_str()))?;
        tracing::info!(operation = op.id, kind = op.kind.as_str(), step, "step");
        self.emit("step", op.id, op.kind, &op.subject, serde_json::json!({ "step": step }));
        op.context = to_value(context);
        op.undo.extend(undo);
        op.step = step.to_owned();
        self.persist(op).await
    }

    /// Appends an effect to the undo log in the middle of a step (an image
    /// id learnt from an archive's manifest, before its load completes).
    pub async fn add_undo(&self, op: &mut Op, effect: Effect) -> Result<(), JournalError> {
        op.undo.push(effect);
        self.persist(op).await
    }

    async fn persist(&self, op: &Op) -> Result<(), JournalError> {
        let (id, kind, step, context, undo) = (op.id, op.kind, op.step.clone(), op.context.clone(), op.undo.clone());
        self.db("recording a journal step", move |s| s.record_step(id, kind, &step, &context, &undo)).await
    }

    /// Commits: the operation's change (`app`), its final context and the
    /// forward work, in one transaction. Then works off the forward log.
    pub async fn commit<C: Serialize>(
        &self,
        op: &Op,
        context: &C,
        forward: Vec<Effect>,
        app: AppChange,
    ) -> Result<Settled, JournalError> {
        let kind = op.kind;
        self.reach(&format!("{}:before_commit", kind.as_str()))?;
        let (id, context) = (op.id, to_value(context));
        // Without forward work the store closes the entry with the commit.
        let closed = forward.is_empty();
        self.db("committing an operation", move |s| s.commit(id, kind, &context, &forward, app)).await?;
        tracing::info!(operation = id, kind = kind.as_str(), "committed");
        self.emit("committed", id, kind, &op.subject, serde_json::json!({}));
        if closed {
            self.emit("done", id, kind, &op.subject, serde_json::json!({}));
        }
        self.reach(&format!("{}:after_commit", kind.as_str()))?;
        if closed {
            return Ok(Settled::Closed);
        }
        // The operation's own claim covers its forward work.
        Ok(self.finish_claimed(id, kind).await)
    }

    /// The operation failed (`reason`): its undo log is replayed in reverse.
    pub async fn roll_back(&self, op: Op, reason: &str) -> Settled {
        let (id, kind, reason) = (op.id, op.kind, reason.to_owned());
        tracing::warn!(operation = id, kind = kind.as_str(), step = %op.step, %reason, "rolling back");
        self.emit("rolling_back", id, kind, &op.subject, serde_json::json!({ "step": op.step, "reason": reason }));
        if let Err(e) = self.db("starting a rollback", move |s| s.start_rollback(id, kind, &reason)).await {
            return Settled::Failed(e);
        }
        self.replay_undo(id, kind, &op.subject, op.undo).await
    }

    async fn replay_undo(&self, id: i64, kind: OperationKind, subject: &str, mut undo: Vec<Effect>) -> Settled {
        while let Some(effect) = undo.last().cloned() {
            if let Err(halted) = self.crash.reach(&format!("{}:undo_{}", kind.as_str(), undo.len())) {
                return Settled::Halted(halted);
            }
            match self.apply(&effect, id).await {
                Ok(()) => {}
                Err(e) if e.retry => return Settled::Waiting { effect: effect.describe(), reason: e.message },
                Err(e) => {
                    tracing::error!(operation = id, effect = %effect.describe(), error = %e.message, "an undo step failed; it is not retried");
                }
            }
            undo.pop();
            let left = undo.clone();
            if let Err(e) = self.db("updating the undo log", move |s| s.set_undo(id, kind, &left)).await {
                return Settled::Failed(e);
            }
        }
        match self
            .db("closing an operation", move |s| s.close(id, kind, Phase::RollingBack, Phase::RolledBack, None))
            .await
        {
            Ok(()) => {
                tracing::info!(operation = id, kind = kind.as_str(), "rolled back");
                self.emit("rolled_back", id, kind, subject, serde_json::json!({}));
                Settled::Closed
            }
            Err(e) => Settled::Failed(e),
        }
    }

    /// Works off the forward log of a committed entry, then closes it.
    pub async fn finish(&self, id: i64, kind: OperationKind) -> Settled {
        let Some(_claim) = Claim::take(&self.claimed, id) else {
            return Settled::Waiting { effect: format!("operation {id}"), reason: "recovery is finishing it".into() };
        };
        self.finish_claimed(id, kind).await
    }

    async fn finish_claimed(&self, id: i64, kind: OperationKind) -> Settled {
        let entry = match self.db("reading the journal", move |s| s.entry(id)).await {
            Ok(Some(entry)) if entry.phase == Phase::Committed => entry,
            Ok(_) => return Settled::Closed,
            Err(e) => return Settled::Failed(e),
        };
        self.replay_forward(id, kind, &entry.subject, entry.forward).await
    }

    async fn replay_forward(&self, id: i64, kind: OperationKind, subject: &str, mut forward: Vec<Effect>) -> Settled {
        while let Some(effect) = forward.first().cloned() {
            if let Err(halted) = self.crash.reach(&format!("{}:forward_{}", kind.as_str(), forward.len())) {
                return Settled::Halted(halted);
            }
            match self.apply(&effect, id).await {
                Ok(()) => {}
                Err(e) if e.retry => return Settled::Waiting { effect: effect.describe(), reason: e.message },
                Err(e) => {
                    tracing::error!(operation = id, effect = %effect.describe(), error = %e.message, "a step after the commit failed; it is not retried");
                }
            }
            forward.remove(0);
            let left = forward.clone();
            if let Err(e) = self.db("updating the forward log", move |s| s.set_forward(id, kind, &left)).await {
                return Settled::Failed(e);
            }
        }
        match self.db("closing an operation", move |s| s.close(id, kind, Phase::Committed, Phase::Done, None)).await {
            Ok(()) => {
                self.emit("done", id, kind, subject, serde_json::json!({}));
                Settled::Closed
            }
            Err(e) => Settled::Failed(e),
        }
    }

    async fn apply(&self, effect: &Effect, id: i64) -> Result<(), EffectError> {
        match self.effects.get() {
            Some(runner) => runner.apply(effect, id).await,
            None => Err(EffectError::retry("the daemon is not assembled yet")),
        }
    }

    /// Resolves one open entry by its recovery rule: before the commit it is
    /// rolled back, after it finished.
    /// `None`: the operation is under way in this process, and left alone.
    pub async fn resume(&self, entry: Entry) -> Option<Settled> {
        let _claim = Claim::take(&self.claimed, entry.id)?;
        Some(self.resume_claimed(entry).await)
    }

    async fn resume_claimed(&self, entry: Entry) -> Settled {
        let (id, kind) = (entry.id, entry.kind);
        match berth_core::journal::recovery(entry.phase) {
            Some(berth_core::journal::Recovery::RollBack) => {
                tracing::warn!(operation = id, kind = kind.as_str(), step = %entry.step, subject = %entry.subject, "undoing an operation cut short");
                if entry.phase == Phase::Running {
                    let reason = "the daemon stopped during the operation";
                    if let Err(e) = self.db("starting a rollback", move |s| s.start_rollback(id, kind, reason)).await {
                        return Settled::Failed(e);
                    }
                }
                self.replay_undo(id, kind, &entry.subject, entry.undo).await
            }
            Some(berth_core::journal::Recovery::RollForward) => {
                tracing::warn!(operation = id, kind = kind.as_str(), subject = %entry.subject, "finishing an operation cut short");
                self.replay_forward(id, kind, &entry.subject, entry.forward).await
            }
            None => Settled::Closed,
        }
    }

    pub async fn open_entries(&self) -> Result<Vec<Entry>, JournalError> {
        self.db("reading the journal", |s| s.open_entries()).await
    }

    pub async fn open_entry_of(&self, subject: &Subject) -> Result<Option<Entry>, JournalError> {
        let key = subject.key();
        self.db("reading the journal", move |s| s.open_entry_of(&key)).await
    }

    /// Whether an operation under way in this daemon (its task, or a
    /// recovery) holds entry `id`.
    pub fn is_claimed(&self, id: i64) -> bool {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }

    pub async fn entry(&self, id: i64) -> Result<Option<Entry>, JournalError> {
        self.db("reading the journal", move |s| s.entry(id)).await
    }

    pub async fn last_entry_of(&self, subject: &Subject) -> Result<Option<Entry>, JournalError> {
        let key = subject.key();
        self.db("reading the journal", move |s| s.last_entry_of(&key)).await
    }

    /// Resolves every open entry (at start-up, and when the engine is back).
    /// Entries that still wait for the engine stay open.
    pub async fn resume_open(&self) -> Result<usize, JournalError> {
        let mut waiting = 0;
        for entry in self.open_entries().await? {
            let Some(settled) = self.resume(entry).await else {
                continue;
            };
            match settled {
                Settled::Closed => {}
                Settled::Waiting { effect, reason } => {
                    waiting += 1;
                    tracing::warn!(%effect, %reason, "an operation waits for the engine");
                }
                Settled::Halted(halted) => return Err(halted.into()),
                Settled::Failed(e) => return Err(e),
            }
        }
        Ok(waiting)
    }
}
