//! The live parts of a Space's page as one stream of server-sent events
//! (one connection per page: browsers allow only six per host over
//! HTTP/1.1, and a few open tabs would otherwise use them all up):
//!
//! - `stage`: JSON `{"stage", "message"}`, first the current one, then on
//!   every change the hub signals (and every few seconds as a backstop, for
//!   changes the runner makes on its own);
//! - `build` and `run`, for the Space's writers only: one JSON string per
//!   log line, the history first. These follow the Space's *current* log:
//!   when a new build or container starts, the stream moves to its log, so a
//!   page left open shows the next deploy too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::{broadcast, mpsc};

use super::pages::is_owner;
use super::{UiState, Viewer, not_found};
use crate::build::LogBook;
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::api::auth::{readable, repo_id};
use crate::plan::SpaceId;
use crate::repos::RepoKind;

type Ui = Extension<Arc<UiState>>;

/// How often the stage and the logs' identity are looked at when nothing
/// was signalled.
const BACKSTOP: Duration = Duration::from_secs(3);

fn sse(rx: mpsc::Receiver<Event>) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send> {
    let events = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
}

fn stage_event<E: ContainerEngine>(hub: &Hub<E>, space: &SpaceId) -> Option<(String, Event)> {
    let view = hub.view_of(space)?;
    let json = serde_json::json!({
        "stage": view.stage.as_str(),
        "message": view.message,
    })
    .to_string();
    Some((json.clone(), Event::default().event("stage").data(json)))
}

/// A log line as an event: a JSON string, so empty lines and carriage
/// returns travel intact.
fn line_event(which: &'static str, line: &str) -> Event {
    Event::default()
        .event(which)
        .data(serde_json::Value::from(line).to_string())
}

/// One log the stream follows: the book it reads now and its receiver.
struct Follow {
    which: &'static str,
    book: Option<Arc<LogBook>>,
    lines: Option<broadcast::Receiver<String>>,
}

impl Follow {
    fn new(which: &'static str) -> Self {
        Follow {
            which,
            book: None,
            lines: None,
        }
    }

    /// Moves to the current book when it changed; the events to send (its
    /// history, after a separator when an earlier book was shown).
    fn refresh(&mut self, now: Option<Arc<LogBook>>) -> Vec<Event> {
        let moved = match (&self.book, &now) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        };
        if !moved {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.book.is_some() && now.is_some() {
            out.push(line_event(self.which, "===== a new log starts ====="));
        }
        self.lines = now.as_ref().map(|b| {
            let (history, rx) = b.subscribe();
            out.extend(history.iter().map(|l| line_event(self.which, l)));
            rx
        });
        self.book = now;
        out
    }

    /// The next line, or never when there is no book.
    async fn next(&mut self) -> Option<Event> {
        let Some(rx) = self.lines.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(l) => Some(line_event(self.which, &l)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(line_event(
                self.which,
                &format!("[{n} lines skipped: the reader was too slow]"),
            )),
            Err(broadcast::error::RecvError::Closed) => {
                self.lines = None;
                None
            }
        }
    }
}

pub async fn events<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let Some(repo) = repo_id(RepoKind::Space, &owner, &name)
        .ok()
        .and_then(|id| readable(&hub, &viewer.caller, RepoKind::Space, &id).ok())
    else {
        return not_found(&viewer.chrome(&ui), viewer.identity().is_some());
    };
    let with_logs = is_owner(&hub, &viewer, &repo.id);
    let (tx, rx) = mpsc::channel::<Event>(512);
    let space = repo.id.clone();
    let mut changes = hub.changes(&space);
    tokio::spawn(async move {
        let mut last_stage = String::new();
        let mut build = Follow::new("build");
        let mut run = Follow::new("run");
        loop {
            let Some((key, event)) = stage_event(&hub, &space) else {
                return; // the Space was deleted
            };
            let mut batch = Vec::new();
            if key != last_stage {
                batch.push(event);
                last_stage = key;
            }
            if with_logs {
                batch.extend(build.refresh(hub.build_log(&space)));
                batch.extend(run.refresh(hub.runner().logs(&space)));
            }
            for e in batch {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                Some(e) = build.next() => if tx.send(e).await.is_err() { return },
                Some(e) = run.next() => if tx.send(e).await.is_err() { return },
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(BACKSTOP) => {}
                _ = tx.closed() => return,
            }
        }
    });
    sse(rx).into_response()
}
