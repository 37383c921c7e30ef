//! Live parts of a Space's page, as server-sent events: its stage (event
//! `stage`, JSON `{"stage", "message"}`) whenever the hub notes a change
//! (and every few seconds as a backstop, for changes the runner makes on its
//! own), and its build or run log line by line. The log streams follow the
//! Space's *current* log: when a new build or container starts, the stream
//! moves to its log, so a page left open shows the next deploy too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use http::StatusCode;
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

/// How often the stage is looked at when nothing was signalled.
const STAGE_BACKSTOP: Duration = Duration::from_secs(3);

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

fn sse(
    rx: mpsc::Receiver<Event>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    use futures_util::StreamExt as _;
    Sse::new(receiver_stream(rx).map(Ok))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
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

pub async fn stage<E: ContainerEngine>(
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
    let (tx, rx) = mpsc::channel(8);
    let space = repo.id.clone();
    let mut changes = hub.changes(&space);
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            let Some((key, event)) = stage_event(&hub, &space) else {
                return; // deleted
            };
            if key != last {
                if tx.send(event).await.is_err() {
                    return;
                }
                last = key;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(STAGE_BACKSTOP) => {}
                _ = tx.closed() => return,
            }
        }
    });
    sse(rx).into_response()
}

/// The Space's current build or run log.
fn current_book<E: ContainerEngine>(
    hub: &Hub<E>,
    space: &SpaceId,
    run: bool,
) -> Option<Arc<LogBook>> {
    if run {
        hub.runner().logs(space)
    } else {
        hub.build_log(space)
    }
}

pub async fn logs<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((owner, name, which)): Path<(String, String, String)>,
) -> Response {
    let Some(repo) = repo_id(RepoKind::Space, &owner, &name)
        .ok()
        .and_then(|id| readable(&hub, &viewer.caller, RepoKind::Space, &id).ok())
    else {
        return not_found(&viewer.chrome(&ui), viewer.identity().is_some());
    };
    if !is_owner(&hub, &viewer, &repo.id) {
        return super::pages::owners_only(&viewer.chrome(&ui), &viewer, &repo);
    }
    let run = match which.as_str() {
        "build" => false,
        "run" => true,
        _ => {
            return super::error_page(
                StatusCode::NOT_FOUND,
                &viewer.chrome(&ui),
                "No such log",
                "A Space has a build log and a run log.",
            );
        }
    };
    let (tx, rx) = mpsc::channel::<Event>(256);
    let space = repo.id.clone();
    let mut changes = hub.changes(&space);
    tokio::spawn(async move {
        let mut book: Option<Arc<LogBook>> = None;
        let mut lines: Option<broadcast::Receiver<String>> = None;
        loop {
            let now = current_book(&hub, &space, run);
            let moved = match (&book, &now) {
                (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
                (None, None) => false,
                _ => true,
            };
            if moved {
                if book.is_some() && now.is_some() {
                    let _ = tx
                        .send(Event::default().data("===== a new log starts ====="))
                        .await;
                }
                lines = now.as_ref().map(|b| {
                    let (history, rx) = b.subscribe();
                    for l in history {
                        if tx.try_send(Event::default().data(l)).is_err() {
                            break;
                        }
                    }
                    rx
                });
                book = now;
            }
            let next_line = async {
                match lines.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                line = next_line => match line {
                    Ok(l) => if tx.send(Event::default().data(l)).await.is_err() { return },
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let _ = tx.send(Event::default().data(format!("[{n} lines skipped: the reader was too slow]"))).await;
                    }
                    Err(broadcast::error::RecvError::Closed) => lines = None,
                },
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(STAGE_BACKSTOP) => {}
                _ = tx.closed() => return,
            }
        }
    });
    sse(rx).into_response()
}
