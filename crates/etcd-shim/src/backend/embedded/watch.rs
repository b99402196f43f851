//! Watch streams over the embedded store.
//!
//! One task per client stream owns that stream's watchers. Each watcher remembers the next
//! revision it owes the client; whenever the writer publishes a commit (or a progress
//! request or tick arrives) the task replays the event log from there up to the committed
//! revision, so a watcher is never ahead of durable state, never skips a revision and never
//! repeats one. A watcher that falls behind the compaction revision is cancelled with
//! `compact_revision`, exactly like etcd.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use daas_etcd_proto::mvccpb::{Event, event::EventType};
use daas_etcd_proto::{
    WatchCreateRequest, WatchRequest, WatchResponse, watch_create_request::FilterType,
    watch_request::RequestUnion,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Shared;
use super::mvcc::{KeyRange, header};
use crate::backend::{Requests, Responses};

/// Events per response before a catch-up is split (at a revision boundary).
const MAX_EVENTS_PER_RESPONSE: usize = 1000;

struct Watcher {
    range: KeyRange,
    next_rev: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

/// Starts the task serving one watch stream.
pub(crate) fn serve(
    shared: Arc<Shared>,
    requests: Requests<WatchRequest>,
    progress_interval: Duration,
) -> Responses<WatchResponse> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut stream = WatchStream {
            shared,
            tx,
            watchers: BTreeMap::new(),
            next_id: 0,
        };
        stream.run(requests, progress_interval).await;
    });
    Box::pin(ReceiverStream::new(rx))
}

struct WatchStream {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
}

/// The client went away.
struct Closed;

impl WatchStream {
    async fn run(&mut self, mut requests: Requests<WatchRequest>, progress_interval: Duration) {
        let mut commits = self.shared.commits.subscribe();
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + progress_interval,
            progress_interval,
        );
        loop {
            let step = tokio::select! {
                request = requests.next() => match request {
                    Some(Ok(request)) => self.handle(request).await,
                    // Client closed its side or broke the stream.
                    _ => Err(Closed),
                },
                changed = commits.changed() => match changed {
                    Ok(()) => self.catch_up_all().await.map(|_| ()),
                    Err(_) => Err(Closed),
                },
                _ = ticker.tick() => self.progress_notify().await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    fn committed(&self) -> i64 {
        *self.shared.commits.borrow()
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Closed> {
        self.tx.send(Ok(response)).await.map_err(|_| Closed)
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Closed> {
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    self.send(WatchResponse {
                        header: header(self.committed()),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..WatchResponse::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Catching up first makes every watcher synced, so the answer is always
                // the broadcast form kube-apiserver waits for (watch_id = -1).
                let rev = self.catch_up_all().await?;
                self.send(WatchResponse {
                    header: header(rev),
                    watch_id: -1,
                    ..WatchResponse::default()
                })
                .await
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Closed> {
        let (committed, compacted) = match self.shared.mvcc.read() {
            Ok(m) => (m.committed, m.compacted),
            Err(_) => return Err(Closed),
        };
        let id = if create.watch_id != 0 {
            if self.watchers.contains_key(&create.watch_id) {
                return self
                    .send(WatchResponse {
                        header: header(committed),
                        watch_id: create.watch_id,
                        created: true,
                        canceled: true,
                        cancel_reason: "etcdserver: mvcc: watcher ID already exists".into(),
                        ..WatchResponse::default()
                    })
                    .await;
            }
            create.watch_id
        } else {
            // Like etcd: ids count up per stream and are never reused.
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        };
        self.send(WatchResponse {
            header: header(committed),
            watch_id: id,
            created: true,
            ..WatchResponse::default()
        })
        .await?;
        if create.start_revision != 0 && create.start_revision < compacted {
            return self
                .send(WatchResponse {
                    // etcd sends revision 0 in the header of a compaction cancel.
                    header: header(0),
                    watch_id: id,
                    canceled: true,
                    compact_revision: compacted,
                    ..WatchResponse::default()
                })
                .await;
        }
        let filters = |f: FilterType| create.filters.contains(&(f as i32));
        self.watchers.insert(
            id,
            Watcher {
                range: KeyRange::new(&create.key, &create.range_end),
                next_rev: if create.start_revision <= 0 {
                    committed + 1
                } else {
                    create.start_revision
                },
                prev_kv: create.prev_kv,
                no_put: filters(FilterType::Noput),
                no_delete: filters(FilterType::Nodelete),
                progress_notify: create.progress_notify,
            },
        );
        self.catch_up_all().await.map(|_| ())
    }

    /// Delivers everything up to the committed revision to every watcher; returns that revision.
    async fn catch_up_all(&mut self) -> Result<i64, Closed> {
        let mut outgoing = Vec::new();
        let mut compacted_out = Vec::new();
        let rev;
        {
            let Ok(mvcc) = self.shared.mvcc.read() else {
                return Err(Closed);
            };
            rev = mvcc.committed;
            for (id, watcher) in &mut self.watchers {
                if watcher.next_rev > rev {
                    continue;
                }
                let Some(revisions) = mvcc.events(watcher.next_rev, rev) else {
                    compacted_out.push((*id, mvcc.compacted));
                    continue;
                };
                watcher.next_rev = rev + 1;
                let mut events: Vec<Event> = Vec::new();
                for (_, batch) in revisions {
                    for event in batch.iter() {
                        if let Some(e) = watcher.select(event) {
                            events.push(e);
                        }
                    }
                    if events.len() >= MAX_EVENTS_PER_RESPONSE {
                        outgoing.push((*id, std::mem::take(&mut events)));
                    }
                }
                if !events.is_empty() {
                    outgoing.push((*id, events));
                }
            }
        }
        for (id, compact_revision) in compacted_out {
            self.watchers.remove(&id);
            self.send(WatchResponse {
                header: header(0),
                watch_id: id,
                canceled: true,
                compact_revision,
                ..WatchResponse::default()
            })
            .await?;
        }
        for (id, events) in outgoing {
            self.send(WatchResponse {
                header: header(rev),
                watch_id: id,
                events,
                ..WatchResponse::default()
            })
            .await?;
        }
        Ok(rev)
    }

    async fn progress_notify(&mut self) -> Result<(), Closed> {
        if !self.watchers.values().any(|w| w.progress_notify) {
            return Ok(());
        }
        let rev = self.catch_up_all().await?;
        let ids: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.send(WatchResponse {
                header: header(rev),
                watch_id: id,
                ..WatchResponse::default()
            })
            .await?;
        }
        Ok(())
    }
}

impl Watcher {
    fn select(&self, event: &Event) -> Option<Event> {
        let kv = event.kv.as_ref()?;
        if !self.range.contains(&kv.key) {
            return None;
        }
        let is_put = event.r#type == EventType::Put as i32;
        if (is_put && self.no_put) || (!is_put && self.no_delete) {
            return None;
        }
        let mut event = event.clone();
        if !self.prev_kv {
            event.prev_kv = None;
        }
        Some(event)
    }
}
