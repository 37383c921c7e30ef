//! Build and run logs as server-sent events, in the Hub's format: one
//! `data: {"data": "<line>\n", "timestamp": "<ISO 8601>"}` event per line.
//! The history comes first, then lines as they are written; the stream
//! stays open (the client stops reading when it has what it wants).

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast;

use super::auth::WritableSpace;
use super::{ApiError, ApiResult};
use crate::build::LogBook;
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::backend::{LogKind, Logs};

/// Now, as the Hub writes log timestamps.
pub fn log_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let base = crate::build::utc_timestamp(t).replacen(' ', "T", 1);
    format!("{base}.{:03}Z", d.subsec_millis())
}

fn event(line: &str) -> Event {
    let mut data = line.to_owned();
    data.push('\n');
    let json = serde_json::json!({ "data": data, "timestamp": log_timestamp(SystemTime::now()) });
    Event::default().data(json.to_string())
}

/// The lines of a log book: the history, then new lines until the book
/// is dropped.
pub fn follow(book: &LogBook) -> impl Stream<Item = String> + Send + 'static {
    let (history, rx) = book.subscribe();
    let live = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(line) => Some((line, rx)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Some((format!("[{n} lines skipped: the reader was too slow]"), rx))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    });
    stream::iter(history).chain(live)
}

pub async fn logs<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    Path((_, _, which)): Path<(String, String, String)>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let kind = match which.as_str() {
        "build" => LogKind::Build,
        "run" => LogKind::Run,
        other => {
            return Err(ApiError::new(
                http::StatusCode::NOT_FOUND,
                format!("unknown log '{other}': use build or run"),
            ));
        }
    };
    let book = match (hub.backend(), kind) {
        (Some(backend), _) => match backend.logs(&repo.id, kind) {
            Logs::Book(book) => Some(book),
            // Said plainly rather than a stream that never speaks.
            Logs::Unavailable(why) => {
                return Err(ApiError::new(http::StatusCode::NOT_IMPLEMENTED, why));
            }
        },
        (None, LogKind::Build) => hub.build_log(&repo.id),
        (None, LogKind::Run) => hub.runner().logs(&repo.id),
    };
    let lines: std::pin::Pin<Box<dyn Stream<Item = String> + Send>> = match book {
        Some(book) => Box::pin(follow(&book)),
        None => Box::pin(stream::pending()),
    };
    let events = lines.map(|l| Ok(event(&l)));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(60))))
}

impl<E: ContainerEngine> Hub<E> {
    /// The log of the Space's latest build.
    pub fn build_log(&self, space: &crate::plan::SpaceId) -> Option<std::sync::Arc<LogBook>> {
        self.entry(space)
            .build
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|b| b.log.clone())
    }
}
