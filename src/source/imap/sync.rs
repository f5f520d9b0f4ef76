//! Opening a folder and fetching what is new, exactly once.
//!
//! New means: UID above the checkpoint kept in SQLite for the folder's
//! UIDVALIDITY. Sizes and INTERNALDATEs come first (one small FETCH); a
//! message over `ingest.max_message_size` is quarantined from its headers
//! (`BODY.PEEK[HEADER]`) and never loaded. Bodies (`BODY.PEEK[]`, never
//! setting `\Seen`) come in batches of at most `batch_size` messages and
//! [`MAX_BATCH_BYTES`]; each batch is analyzed on the analysis threads and
//! committed in one transaction together with its checkpoint and owed
//! actions, while the next batch downloads. Only after the commit are the
//! messages flagged or moved on the server and the owed actions deleted.

use std::collections::{HashMap, HashSet};

use async_imap::types::Fetch;
use futures::{Stream, StreamExt};
use jiff::Timestamp;

use super::actions::{self, Action};
use super::connect::{self, Connection, Credentials};
use super::{COMMAND_TIMEOUT, Folder, ImapError, timed, utf7};
use crate::config::{Backlog, ImapConfig};
use crate::daemon::{PassSummary, Shared};
use crate::health::Heartbeat;
use crate::mail::{Origin, RawMail};
use crate::pipeline::{self, Analyzer};
use crate::store::StoreError;
use crate::store::imap_state::{self, FolderState};
use crate::store::ingest::{
    Checkpoint, IngestItem, IngestReport, MailboxAction, SourceEffects, Work,
};

/// Most body bytes fetched and held per batch, whatever `batch_size`
/// says: with [`BATCHES_IN_FLIGHT`] this bounds the memory of ingestion
/// (a batch holds about four times its bytes while it is analyzed).
/// About 40 messages of the benchmark mailbox: one fsync per batch is
/// still nothing next to their analysis.
pub const MAX_BATCH_BYTES: u64 = 1 << 20;

/// Batches downloaded but not yet finished, across all folders of the
/// process. Analysis is CPU-bound, so more folders draining at once would
/// not go faster, only use more memory: five mailboxes draining a backlog
/// together use the memory of one. Two, not three, since the writer got
/// cheap (raw bytes compressed on the analysis threads): one mailbox
/// drains as fast with two (0.97 s per 1,000 either way), five drain
/// about 12% slower, and the peak RSS drops by about 2 MB (BENCHMARKS.md,
/// "IMAP ingest").
const BATCHES_IN_FLIGHT: usize = 2;

static BATCH_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BATCHES_IN_FLIGHT);

/// The folder as selected in this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub uidvalidity: u32,
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncDone {
    /// `shared.stop` was cancelled: the batch in hand was committed and
    /// its actions run; the rest waits for the next start.
    pub stopped: bool,
    /// Messages committed (duplicates and quarantined ones included).
    pub messages: usize,
}

/// What the size listing says about one new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    uid: u32,
    size: u64,
    arrived: Option<Timestamp>,
}

/// A fetched message: its bytes, or only its header section when it is
/// over the size limit.
#[derive(Debug)]
struct Fetched {
    meta: Meta,
    content: Content,
}

/// What was downloaded of a message: all of it, or (over the size limit)
/// its header section, kept for the quarantine entry.
#[derive(Debug)]
enum Content {
    Whole(Vec<u8>),
    TooLarge { head: Vec<u8> },
}

/// SELECTs the folder and reconciles it with SQLite: first contact applies
/// the backlog setting, a changed UIDVALIDITY starts a rescan; then the
/// actions owed from an earlier session are carried out.
pub async fn open_folder(
    shared: &Shared,
    conn: &mut Connection,
    folder: &Folder,
) -> Result<Opened, ImapError> {
    let wire = utf7::encode(&folder.name);
    let mbox = timed("SELECT", COMMAND_TIMEOUT, async {
        conn.session
            .select(&wire)
            .await
            .map_err(|e| ImapError::on_folder("SELECT", &folder.name, e))
    })
    .await?;
    let uidvalidity = mbox
        .uid_validity
        .ok_or_else(|| ImapError::NoUidValidity(folder.name.clone()))?;
    let source = folder.source();
    let s = source.clone();
    let state = shared
        .store
        .call(move |c| imap_state::folder_state(c, &s))
        .await
        .map_err(ImapError::Store)?;
    match state {
        None => {
            let uid_next = match mbox.uid_next {
                Some(n) => n,
                None => highest_uid(conn).await?.saturating_add(1),
            };
            let backlog = folder.backlog();
            let first = first_contact_state(backlog, uidvalidity, uid_next, mbox.exists);
            tracing::info!(
                backlog = ?backlog,
                messages = mbox.exists,
                uidvalidity,
                "First contact with this folder."
            );
            let s = source.clone();
            shared
                .store
                .call(move |c| imap_state::first_contact(c, &s, first, Timestamp::now()))
                .await
                .map_err(ImapError::Store)?;
        }
        Some(st) if st.uidvalidity != uidvalidity => {
            let s = source.clone();
            let dropped = shared
                .store
                .call(move |c| imap_state::uidvalidity_changed(c, &s, uidvalidity))
                .await
                .map_err(ImapError::Store)?;
            tracing::warn!(
                old = st.uidvalidity,
                new = uidvalidity,
                dropped_actions = dropped,
                "UIDVALIDITY changed: rescanning the folder; messages already stored are recognized by Message-ID and content hash."
            );
        }
        Some(_) => {}
    }
    actions::run_pending(shared, conn, folder, uidvalidity).await?;
    conn.drain_unsolicited();
    Ok(Opened { uidvalidity })
}

/// The state written at first contact. `uid_next` is the UID the next
/// message will get: everything below it is the backlog.
fn first_contact_state(
    backlog: Backlog,
    uidvalidity: u32,
    uid_next: u32,
    exists: u32,
) -> FolderState {
    let (last_uid, backlog_end) = match backlog {
        Backlog::All => (0, None),
        Backlog::Unseen if exists > 0 => (0, Some(uid_next)),
        Backlog::Unseen | Backlog::None => (uid_next.saturating_sub(1), None),
    };
    FolderState {
        uidvalidity,
        last_uid,
        backlog_end,
    }
}

/// One pass: fetches, commits and acts on everything new in the selected
/// folder. `summary` collects the reports in `--once` mode.
pub async fn sync(
    shared: &Shared,
    conn: &mut Connection,
    folder: &Folder,
    opened: &Opened,
    heartbeat: &Heartbeat,
    mut summary: Option<&mut PassSummary>,
) -> Result<SyncDone, ImapError> {
    let source = folder.source();
    let s = source.clone();
    let state = shared
        .store
        .call(move |c| imap_state::folder_state(c, &s))
        .await
        .map_err(ImapError::Store)?
        .filter(|st| st.uidvalidity == opened.uidvalidity)
        .ok_or_else(|| {
            ImapError::Store(StoreError::Corrupt(format!(
                "the checkpoint of {source} vanished or changed during the session"
            )))
        })?;
    let from = state.last_uid.saturating_add(1);
    let mut metas = list_new(conn, from).await?;
    if let Some(end) = state.backlog_end
        && from < end
        && !metas.is_empty()
    {
        let unseen = search_unseen(conn, from, end - 1).await?;
        metas.retain(|m| m.uid >= end || unseen.contains(&m.uid));
    }
    let mut done = SyncDone::default();
    if !metas.is_empty() {
        tracing::debug!(messages = metas.len(), from_uid = from, "New messages.");
    }
    let limit = shared.analyzer.max_message_size();
    let batches = plan_batches(&metas, folder.config.batch_size, limit as u64);
    let mut pipeline = Pipeline::default();
    for batch in batches {
        if shared.stop.is_cancelled() {
            done.stopped = true;
            break;
        }
        heartbeat.beat();
        // A permit per batch in flight. Without one at hand, finish our own
        // oldest batch first (that frees one): a folder never waits for a
        // permit while holding some, so folders cannot deadlock.
        let permit = loop {
            if let Ok(p) = BATCH_PERMITS.try_acquire() {
                break p;
            }
            if pipeline.queue.is_empty() {
                match BATCH_PERMITS.acquire().await {
                    Ok(p) => break p,
                    Err(_) => return Err(ImapError::Task("the batch semaphore closed".into())),
                }
            }
            match pipeline
                .finish_oldest(shared, conn, folder, opened, &mut summary)
                .await
            {
                Ok(n) => done.messages += n,
                Err(e) => {
                    return Err(pipeline
                        .abort(shared, folder, opened, e, &mut summary)
                        .await);
                }
            }
        };
        let fetched = match fetch_batch(conn, &batch, limit as u64).await {
            Ok(f) => f,
            Err(e) => {
                return Err(pipeline
                    .abort(shared, folder, opened, e, &mut summary)
                    .await);
            }
        };
        // Bounded: at most DEPTH batches between download and actions.
        while pipeline.queue.len() >= PIPELINE_DEPTH {
            match pipeline
                .finish_oldest(shared, conn, folder, opened, &mut summary)
                .await
            {
                Ok(n) => done.messages += n,
                Err(e) => {
                    return Err(pipeline
                        .abort(shared, folder, opened, e, &mut summary)
                        .await);
                }
            }
        }
        pipeline.launch(shared, folder, opened.uidvalidity, fetched, permit);
    }
    while !pipeline.queue.is_empty() {
        match pipeline
            .finish_oldest(shared, conn, folder, opened, &mut summary)
            .await
        {
            Ok(n) => done.messages += n,
            Err(e) => {
                return Err(pipeline
                    .abort(shared, folder, opened, e, &mut summary)
                    .await);
            }
        }
    }
    pipeline.forget_acted(shared, folder, opened).await?;
    if !done.stopped
        && let Some(end) = state.backlog_end
    {
        let s = source.clone();
        let v = opened.uidvalidity;
        shared
            .store
            .call(move |c| imap_state::finish_backlog(c, &s, v, end))
            .await
            .map_err(ImapError::Store)?;
    }
    Ok(done)
}

/// `UID FETCH from:* (UID RFC822.SIZE INTERNALDATE)`, keeping UIDs ≥
/// `from` (`n:*` also returns the last message when nothing is above n).
async fn list_new(conn: &mut Connection, from: u32) -> Result<Vec<Meta>, ImapError> {
    const WHAT: &str = "UID FETCH (sizes)";
    let mut stream = timed(WHAT, COMMAND_TIMEOUT, async {
        conn.session
            .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE INTERNALDATE)")
            .await
            .map_err(|e| ImapError::protocol(WHAT, e))
    })
    .await?;
    let mut metas = Vec::new();
    while let Some(f) = next_fetch(&mut stream, WHAT).await? {
        let Some(uid) = f.uid.filter(|u| *u >= from) else {
            continue;
        };
        metas.push(Meta {
            uid,
            size: f.size.map(u64::from).unwrap_or(0),
            arrived: f
                .internal_date()
                .and_then(|d| Timestamp::from_second(d.timestamp()).ok()),
        });
    }
    drop(stream);
    metas.sort_unstable_by_key(|m| m.uid);
    metas.dedup_by_key(|m| m.uid);
    Ok(metas)
}

/// The UIDs in `from..=to` not seen on the server (first-contact backlog).
async fn search_unseen(
    conn: &mut Connection,
    from: u32,
    to: u32,
) -> Result<HashSet<u32>, ImapError> {
    timed("UID SEARCH", COMMAND_TIMEOUT, async {
        conn.session
            .uid_search(format!("UID {from}:{to} UNSEEN"))
            .await
            .map_err(|e| ImapError::protocol("UID SEARCH", e))
    })
    .await
}

/// The highest UID in the folder, for servers that send no UIDNEXT.
async fn highest_uid(conn: &mut Connection) -> Result<u32, ImapError> {
    const WHAT: &str = "UID FETCH *";
    let mut stream = timed(WHAT, COMMAND_TIMEOUT, async {
        conn.session
            .uid_fetch("*", "(UID)")
            .await
            .map_err(|e| ImapError::protocol(WHAT, e))
    })
    .await?;
    let mut highest = 0;
    while let Some(f) = next_fetch(&mut stream, WHAT).await? {
        highest = highest.max(f.uid.unwrap_or(0));
    }
    Ok(highest)
}

/// The next FETCH response, with a deadline per response (not per
/// command: a large batch on a slow link may take long, but it must move).
async fn next_fetch<S>(stream: &mut S, what: &'static str) -> Result<Option<Fetch>, ImapError>
where
    S: Stream<Item = Result<Fetch, async_imap::error::Error>> + Unpin,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, stream.next()).await {
        Err(_) => Err(ImapError::Timeout {
            what,
            secs: COMMAND_TIMEOUT.as_secs(),
        }),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(ImapError::protocol(what, e)),
        Ok(Some(Ok(f))) => Ok(Some(f)),
    }
}

/// Splits the new messages into batches of at most `max_count` messages
/// and [`MAX_BATCH_BYTES`] (a larger message goes alone); messages over
/// `limit` weigh nothing, only their headers are fetched.
fn plan_batches(metas: &[Meta], max_count: usize, limit: u64) -> Vec<Vec<Meta>> {
    let mut batches = Vec::new();
    let mut current: Vec<Meta> = Vec::new();
    let mut bytes = 0u64;
    for m in metas {
        let weight = if m.size > limit { 0 } else { m.size };
        if !current.is_empty()
            && (current.len() >= max_count.max(1) || bytes + weight > MAX_BATCH_BYTES)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += weight;
        current.push(*m);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Downloads one batch: whole messages with `BODY.PEEK[]`, headers only
/// (`BODY.PEEK[HEADER]`) for those over the limit. A UID the server does
/// not return was expunged meanwhile and is skipped.
async fn fetch_batch(
    conn: &mut Connection,
    batch: &[Meta],
    limit: u64,
) -> Result<Vec<Fetched>, ImapError> {
    let (large, small): (Vec<&Meta>, Vec<&Meta>) = batch.iter().partition(|m| m.size > limit);
    let small_uids: Vec<u32> = small.iter().map(|m| m.uid).collect();
    let large_uids: Vec<u32> = large.iter().map(|m| m.uid).collect();
    let mut bodies = fetch_parts(conn, &small_uids, "(UID BODY.PEEK[])", Fetch::body).await?;
    let mut heads =
        fetch_parts(conn, &large_uids, "(UID BODY.PEEK[HEADER])", Fetch::header).await?;
    let mut out = Vec::with_capacity(batch.len());
    for m in batch {
        let content = if m.size > limit {
            heads.remove(&m.uid).map(|head| Content::TooLarge { head })
        } else {
            bodies.remove(&m.uid).map(Content::Whole)
        };
        match content {
            Some(content) => out.push(Fetched { meta: *m, content }),
            None => tracing::warn!(
                uid = m.uid,
                "Message vanished before it was fetched; skipped."
            ),
        }
    }
    Ok(out)
}

/// `UID FETCH set query`, drained to its end (a half-read FETCH would
/// leave its responses for the next command to trip over).
async fn fetch_parts(
    conn: &mut Connection,
    uids: &[u32],
    query: &str,
    part: fn(&Fetch) -> Option<&[u8]>,
) -> Result<HashMap<u32, Vec<u8>>, ImapError> {
    const WHAT: &str = "UID FETCH (bodies)";
    let mut out = HashMap::with_capacity(uids.len());
    if uids.is_empty() {
        return Ok(out);
    }
    let mut stream = timed(WHAT, COMMAND_TIMEOUT, async {
        conn.session
            .uid_fetch(actions::uid_set(uids), query)
            .await
            .map_err(|e| ImapError::protocol(WHAT, e))
    })
    .await?;
    while let Some(f) = next_fetch(&mut stream, WHAT).await? {
        if let (Some(uid), Some(bytes)) = (f.uid, part(&f)) {
            out.insert(uid, bytes.to_vec());
        }
    }
    drop(stream);
    conn.drain_unsolicited();
    Ok(out)
}

/// What the server holds under a quarantined message's UID.
#[derive(Debug)]
pub enum Refetched {
    /// The message, whole.
    Found(Vec<u8>),
    /// No message with that UID any more (expunged or moved away).
    Gone,
    /// The folder's UIDVALIDITY changed: the UID may name another message.
    Renumbered,
}

/// Downloads one message by UID, with the folder opened read-only
/// (EXAMINE, `BODY.PEEK[]`): for `postdesk quarantine replay` of a message
/// that was too large to keep, which the server still has. Nothing on the
/// server changes.
pub async fn refetch(
    cfg: &ImapConfig,
    folder: &str,
    uidvalidity: u32,
    uid: u32,
) -> Result<Refetched, ImapError> {
    // One connection for one message: nothing to share the config with.
    let tls = super::tls_config(&crate::tls::TlsConfigs::default(), cfg).await?;
    let mut creds = Credentials::new(cfg.auth.clone());
    let mut conn = connect::connect(cfg, tls.as_ref(), &mut creds).await?;
    let result = refetch_in(&mut conn, folder, uidvalidity, uid).await;
    conn.logout().await;
    result
}

async fn refetch_in(
    conn: &mut Connection,
    folder: &str,
    uidvalidity: u32,
    uid: u32,
) -> Result<Refetched, ImapError> {
    let wire = utf7::encode(folder);
    let mbox = timed("EXAMINE", COMMAND_TIMEOUT, async {
        conn.session
            .examine(&wire)
            .await
            .map_err(|e| ImapError::on_folder("EXAMINE", folder, e))
    })
    .await?;
    let current = mbox
        .uid_validity
        .ok_or_else(|| ImapError::NoUidValidity(folder.to_owned()))?;
    if current != uidvalidity {
        return Ok(Refetched::Renumbered);
    }
    let mut bodies = fetch_parts(conn, &[uid], "(UID BODY.PEEK[])", Fetch::body).await?;
    Ok(bodies
        .remove(&uid)
        .map_or(Refetched::Gone, Refetched::Found))
}

/// Batches between download and post-action. Each batch is analyzed on
/// the analysis threads (one per core, `pipeline::Analyzer::analyze_batch`)
/// as soon as it is downloaded, then committed on the
/// writer thread in UID order (each waits for the previous commit), while
/// the next batch downloads and the one after that is analyzed: network,
/// CPU and database work overlap instead of taking turns.
const PIPELINE_DEPTH: usize = 2;

/// Owed-action rows are deleted in one transaction per this many carried
/// out actions (and at the end of every sync), not after every batch: the
/// delete costs a commit (an fsync), while forgetting to delete only means
/// that after a crash a few actions run twice, which is harmless (flagging
/// `\Seen` again, or moving UIDs that are gone, is a no-op on the server).
const FORGET_ACTIONS_EVERY: usize = 1000;

/// The batches in flight, oldest first.
#[derive(Default)]
struct Pipeline {
    queue: std::collections::VecDeque<InFlight>,
    /// Fires when the newest batch's commit is done: `true` if it worked.
    last_commit: Option<tokio::sync::oneshot::Receiver<bool>>,
    /// The lowest UID rewound to in this sync, after a failed commit.
    failed_uid: Option<u32>,
    /// UIDs whose post-action was carried out but whose owed-action row
    /// is not yet deleted (see [`FORGET_ACTIONS_EVERY`]).
    acted: Vec<u32>,
}

/// One batch being analyzed and committed.
struct InFlight {
    first_uid: u32,
    task: tokio::task::JoinHandle<Committed>,
    /// Released when the batch is finished (or dropped with it).
    _permit: tokio::sync::SemaphorePermit<'static>,
}

/// The outcome of analyzing and committing one batch.
#[derive(Debug)]
struct Committed {
    /// (uid, whether the post-action applies) in commit order.
    uids: Vec<(u32, bool)>,
    results: Vec<Result<IngestReport, StoreError>>,
    /// Time spent analyzing and committing, for the debug log.
    analyze_ms: u64,
    store_ms: u64,
}

impl Committed {
    fn failed(first_uid: u32, why: String) -> Committed {
        Committed {
            uids: vec![(first_uid, false)],
            results: vec![Err(StoreError::Corrupt(why))],
            analyze_ms: 0,
            store_ms: 0,
        }
    }
}

impl Pipeline {
    /// Starts analysis of a downloaded batch; its commit follows the
    /// previous batch's.
    fn launch(
        &mut self,
        shared: &Shared,
        folder: &Folder,
        uidvalidity: u32,
        fetched: Vec<Fetched>,
        permit: tokio::sync::SemaphorePermit<'static>,
    ) {
        let Some(first_uid) = fetched.first().map(|f| f.meta.uid) else {
            return;
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let previous = self.last_commit.replace(done_rx);
        let (shared, folder) = (shared.clone(), folder.clone());
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let analyzer = shared.analyzer.clone();
            let built = tokio::task::spawn_blocking(move || {
                build_items(&analyzer, &folder, uidvalidity, fetched)
            })
            .await;
            let analyze_ms = started.elapsed().as_millis() as u64;
            let previous_ok = match previous {
                Some(rx) => rx.await.unwrap_or(false),
                None => true,
            };
            let committed = match built {
                Err(e) => Committed::failed(first_uid, format!("analysis task failed: {e}")),
                Ok(_) if !previous_ok => Committed::failed(
                    first_uid,
                    "not committed: the batch before it failed".to_owned(),
                ),
                Ok((uids, items)) => {
                    let stored = std::time::Instant::now();
                    let results = shared.ingest(items).await;
                    Committed {
                        uids,
                        results,
                        analyze_ms,
                        store_ms: stored.elapsed().as_millis() as u64,
                    }
                }
            };
            let _ = done_tx.send(committed.results.iter().all(Result::is_ok));
            committed
        });
        self.queue.push_back(InFlight {
            first_uid,
            task,
            _permit: permit,
        });
    }

    /// Waits for the oldest batch, logs it, and carries out its
    /// post-action. A message that could not be stored fails the sync.
    async fn finish_oldest(
        &mut self,
        shared: &Shared,
        conn: &mut Connection,
        folder: &Folder,
        opened: &Opened,
        summary: &mut Option<&mut PassSummary>,
    ) -> Result<usize, ImapError> {
        let Some(oldest) = self.queue.pop_front() else {
            return Ok(0);
        };
        let committed = join(oldest).await;
        let (analyze_ms, store_ms) = (committed.analyze_ms, committed.store_ms);
        let settled = settle(committed, summary.as_deref_mut());
        if let Some((uid, e)) = settled.failed {
            self.rewind_to(shared, folder, opened, uid).await;
            return Err(ImapError::Store(e));
        }
        let acted = std::time::Instant::now();
        if let Some(action) = folder.post_action()
            && !settled.act_on.is_empty()
        {
            let parsed = Action::parse(&action)
                .ok_or_else(|| ImapError::Task(format!("bad action {action}")))?;
            actions::apply(conn, parsed, &settled.act_on).await?;
            self.acted.extend(settled.act_on);
            if self.acted.len() >= FORGET_ACTIONS_EVERY {
                self.forget_acted(shared, folder, opened).await?;
            }
        }
        tracing::debug!(
            messages = settled.count,
            analyze_ms,
            store_ms,
            act_ms = acted.elapsed().as_millis() as u64,
            "Batch committed."
        );
        Ok(settled.count)
    }

    /// After a failure: lets the batches in flight finish (their commits
    /// stand, their actions stay owed for the next session), then moves
    /// the checkpoint back below the first message that was not stored, so
    /// no later commit can have carried it past. Returns `error`.
    async fn abort(
        &mut self,
        shared: &Shared,
        folder: &Folder,
        opened: &Opened,
        error: ImapError,
        summary: &mut Option<&mut PassSummary>,
    ) -> ImapError {
        let mut first_failed: Option<u32> = match &error {
            ImapError::Store(_) => self.failed_uid,
            _ => None,
        };
        while let Some(f) = self.queue.pop_front() {
            let settled = settle(join(f).await, summary.as_deref_mut());
            if let Some((uid, _)) = settled.failed {
                first_failed = Some(first_failed.map_or(uid, |u| u.min(uid)));
            }
        }
        if let Some(uid) = first_failed {
            self.rewind_to(shared, folder, opened, uid).await;
        }
        if let Err(e) = self.forget_acted(shared, folder, opened).await {
            tracing::debug!(error = %e, "Owed actions not forgotten; they run again harmlessly.");
        }
        error
    }

    /// Deletes the owed-action rows of the actions carried out so far.
    async fn forget_acted(
        &mut self,
        shared: &Shared,
        folder: &Folder,
        opened: &Opened,
    ) -> Result<(), ImapError> {
        let uids = std::mem::take(&mut self.acted);
        actions::done(shared, &folder.source(), opened.uidvalidity, uids).await
    }

    /// Moves the checkpoint back to just below `uid`: the next sync fetches
    /// from there; messages already committed above it are skipped by
    /// their origin.
    async fn rewind_to(&mut self, shared: &Shared, folder: &Folder, opened: &Opened, uid: u32) {
        self.failed_uid = Some(self.failed_uid.map_or(uid, |u| u.min(uid)));
        let (s, v) = (folder.source(), opened.uidvalidity);
        let back = uid.saturating_sub(1);
        if let Err(e) = shared
            .store
            .call(move |c| imap_state::rewind(c, &s, v, back))
            .await
        {
            tracing::error!(error = %e, "Cannot rewind the checkpoint after a failed commit.");
        }
    }
}

/// Waits for a batch's task. Should it have panicked, the batch counts as
/// failed from its first UID on, so the checkpoint goes back before it.
async fn join(f: InFlight) -> Committed {
    let first_uid = f.first_uid;
    f.task
        .await
        .unwrap_or_else(|e| Committed::failed(first_uid, format!("ingest task failed: {e}")))
}

/// RawMail (origin, arrival, direction) → Work, in UID order, each with
/// its checkpoint and owed action. Blocking (parsing).
fn build_items(
    analyzer: &Analyzer,
    folder: &Folder,
    uidvalidity: u32,
    fetched: Vec<Fetched>,
) -> (Vec<(u32, bool)>, Vec<IngestItem>) {
    let source = folder.source();
    let action = folder.post_action();
    let limit = analyzer.max_message_size();
    let mut uids = Vec::with_capacity(fetched.len());
    let mut slots: Vec<Option<Work>> = Vec::with_capacity(fetched.len());
    let mut raws = Vec::new();
    let mut slot_of: HashMap<u32, usize> = HashMap::new();
    for f in fetched {
        let origin = Origin::Imap {
            mailbox: folder.mailbox.clone(),
            folder: folder.name.clone(),
            uidvalidity,
            uid: f.meta.uid,
        };
        match f.content {
            Content::Whole(bytes) => {
                uids.push((f.meta.uid, action.is_some()));
                slot_of.insert(f.meta.uid, slots.len());
                slots.push(None);
                raws.push(RawMail {
                    origin,
                    mailbox: Some(folder.mailbox.clone()),
                    direction: folder.direction(),
                    arrived: f.meta.arrived,
                    bytes,
                });
            }
            Content::TooLarge { head } => {
                // Left untouched on the server: its bytes are not in the
                // database, so the server copy is the only one.
                uids.push((f.meta.uid, false));
                slots.push(Some(Work::Quarantine(pipeline::too_large(
                    origin,
                    Some(folder.mailbox.clone()),
                    &head,
                    usize::try_from(f.meta.size).unwrap_or(usize::MAX),
                    limit,
                ))));
            }
        }
    }
    // Each Work names its own UID: match by it, not by position.
    for work in analyzer.analyze_batch(raws) {
        if let Origin::Imap { uid, .. } = work.origin()
            && let Some(&i) = slot_of.get(uid)
            && let Some(slot) = slots.get_mut(i)
        {
            *slot = Some(work);
        }
    }
    let mut kept = Vec::with_capacity(uids.len());
    let mut items = Vec::with_capacity(uids.len());
    for ((uid, acts), work) in uids.into_iter().zip(slots) {
        // A message the analysis lost (cannot happen: it contains panics)
        // ends the batch there, so the checkpoint stays below it.
        let Some(work) = work else {
            tracing::error!(uid, "Message not analyzed; it is fetched again next time.");
            break;
        };
        items.push(IngestItem {
            work,
            effects: SourceEffects {
                remember_origin: true,
                checkpoint: Some(Checkpoint {
                    source: source.clone(),
                    uidvalidity,
                    uid,
                }),
                action: action.as_ref().filter(|_| acts).map(|a| MailboxAction {
                    source: source.clone(),
                    uidvalidity,
                    uid,
                    action: a.clone(),
                }),
            },
        });
        kept.push((uid, acts));
    }
    (kept, items)
}

/// What a committed batch comes to.
struct Settled {
    /// Messages committed (duplicates and quarantined ones included).
    count: usize,
    /// UIDs whose post-action is due.
    act_on: Vec<u32>,
    /// The first message that was not stored, and why.
    failed: Option<(u32, StoreError)>,
}

/// Logs each message of a committed batch and sorts the outcomes.
fn settle(committed: Committed, summary: Option<&mut PassSummary>) -> Settled {
    let mut settled = Settled {
        count: 0,
        act_on: Vec::new(),
        failed: None,
    };
    let mut reports = Vec::new();
    let mut uids = committed.uids.iter();
    for result in committed.results {
        let (uid, acts) = uids.next().copied().unwrap_or((0, false));
        match result {
            Ok(report) => {
                crate::daemon::log_report(None, Some(uid), &report);
                settled.count += 1;
                if acts {
                    settled.act_on.push(uid);
                }
                reports.push(report);
            }
            Err(e) => {
                if settled.failed.is_none() {
                    settled.failed = Some((uid, e));
                }
            }
        }
    }
    if let Some(s) = summary {
        s.reports.extend(reports);
    }
    settled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, size: u64) -> Meta {
        Meta {
            uid,
            size,
            arrived: None,
        }
    }

    #[test]
    fn batches_respect_count_bytes_and_the_size_limit() {
        let metas: Vec<Meta> = (1..=5).map(|u| meta(u, 10)).collect();
        let b = plan_batches(&metas, 2, 1000);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        let big = MAX_BATCH_BYTES / 2 + 1;
        let metas = vec![meta(1, big), meta(2, big), meta(3, 10)];
        let b = plan_batches(&metas, 100, u64::MAX);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2]);
        // Over the limit: only headers are fetched, so they weigh nothing.
        let metas = vec![meta(1, u64::MAX), meta(2, u64::MAX), meta(3, 10)];
        assert_eq!(plan_batches(&metas, 100, 1000).len(), 1);
        assert!(plan_batches(&[], 10, 10).is_empty());
    }

    #[test]
    fn first_contact_per_backlog() {
        let st = |b, exists| {
            let s = first_contact_state(b, 9, 51, exists);
            (s.last_uid, s.backlog_end)
        };
        assert_eq!(st(Backlog::All, 50), (0, None));
        assert_eq!(st(Backlog::Unseen, 50), (0, Some(51)));
        assert_eq!(st(Backlog::None, 50), (50, None));
        assert_eq!(
            st(Backlog::Unseen, 0),
            (50, None),
            "an empty folder has no backlog"
        );
    }
}
