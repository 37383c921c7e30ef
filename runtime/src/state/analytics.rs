//! What the proxy metered, per Space and UTC day. Counts in a report are
//! deltas and are added; the unique-visitor sketch is the day's sketch so far
//! and is merged (register-wise maximum).

use std::collections::BTreeMap;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use spaceport_proxy::meter::utc_day;
use spaceport_proxy::{HyperLogLog, SpaceReport};

use super::repos::require;
use super::{Result, StateError, Store, count, to_sql};
use crate::plan::SpaceId;
use crate::repos::RepoKind;

/// The most days one query returns; larger windows are cut to this.
pub const MAX_DAYS: u32 = 3660;

/// One UTC day of a Space, or of all Spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DayStats {
    /// Days since 1970-01-01 UTC.
    pub day: u32,
    /// Page views.
    pub visits: u64,
    /// Estimated distinct visitors that day.
    pub unique_visitors: u64,
    /// Responses by status class, 1xx..5xx.
    pub requests_by_class: [u64; 5],
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
    /// Wakes from sleep.
    pub wakes: u64,
}

/// A day being summed: the counts and the merged sketch.
#[derive(Default)]
struct Acc {
    stats: DayStats,
    sketch: HyperLogLog,
}

const ROW_COLUMNS: &str =
    "day, visits, r1xx, r2xx, r3xx, r4xx, r5xx, bytes_in, bytes_out, wakes, uniques";

fn sketch_from(bytes: Option<Vec<u8>>) -> HyperLogLog {
    match bytes {
        None => HyperLogLog::default(),
        Some(b) => HyperLogLog::from_bytes(&b).unwrap_or_else(|| {
            tracing::warn!("a stored unique-visitor sketch is unreadable; starting it afresh");
            HyperLogLog::default()
        }),
    }
}

impl Store {
    /// Adds a batch of proxy reports, in one transaction. Reports of Spaces
    /// the store does not know (deleted meanwhile) are skipped.
    pub fn record_analytics(&self, reports: &[SpaceReport]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for report in reports {
            let Ok(space) = SpaceId::parse(&report.space.to_string()) else {
                tracing::debug!(space = %report.space, "skipping analytics of an invalid Space id");
                continue;
            };
            let repo_id = match require(&tx, RepoKind::Space, &space) {
                Ok((id, _)) => id,
                Err(StateError::NotFound(_)) => {
                    tracing::debug!(%space, "skipping analytics of an unknown Space");
                    continue;
                }
                Err(e) => return Err(e),
            };
            let old: Option<Option<Vec<u8>>> = tx
                .query_row(
                    "SELECT uniques FROM analytics WHERE repo_id = ?1 AND day = ?2",
                    params![repo_id, report.day],
                    |r| r.get(0),
                )
                .optional()?;
            let mut sketch = sketch_from(old.flatten());
            sketch.merge(&report.unique_visitors);
            let c = report.requests_by_class;
            tx.execute(
                "INSERT INTO analytics (repo_id, day, visits, r1xx, r2xx, r3xx, r4xx, r5xx, \
                 bytes_in, bytes_out, wakes, uniques) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (repo_id, day) DO UPDATE SET \
                 visits = visits + excluded.visits, \
                 r1xx = r1xx + excluded.r1xx, r2xx = r2xx + excluded.r2xx, \
                 r3xx = r3xx + excluded.r3xx, r4xx = r4xx + excluded.r4xx, \
                 r5xx = r5xx + excluded.r5xx, \
                 bytes_in = bytes_in + excluded.bytes_in, \
                 bytes_out = bytes_out + excluded.bytes_out, \
                 wakes = wakes + excluded.wakes, uniques = excluded.uniques",
                params![
                    repo_id,
                    report.day,
                    to_sql(report.visits),
                    to_sql(c[0]),
                    to_sql(c[1]),
                    to_sql(c[2]),
                    to_sql(c[3]),
                    to_sql(c[4]),
                    to_sql(report.bytes_in),
                    to_sql(report.bytes_out),
                    to_sql(report.wakes),
                    sketch.to_bytes(),
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The last `days` UTC days (today included) of a Space, oldest first,
    /// one entry per day (zeros where nothing was recorded).
    pub fn analytics(&self, space: &SpaceId, days: u32) -> Result<Vec<DayStats>> {
        let (from, to) = window(days);
        self.analytics_range(space, from, to)
    }

    /// Days `from..=to` of a Space, oldest first, one entry per day.
    pub fn analytics_range(&self, space: &SpaceId, from: u32, to: u32) -> Result<Vec<DayStats>> {
        let repo_id = require(&self.conn(), RepoKind::Space, space)?.0;
        self.sum_days(Some(repo_id), from, to)
    }

    /// The last `days` UTC days of all Spaces together, oldest first; unique
    /// visitors come from the merged sketches (a visitor of two Spaces
    /// counts once).
    pub fn node_analytics(&self, days: u32) -> Result<Vec<DayStats>> {
        let (from, to) = window(days);
        self.node_analytics_range(from, to)
    }

    /// Days `from..=to` of all Spaces together, oldest first.
    pub fn node_analytics_range(&self, from: u32, to: u32) -> Result<Vec<DayStats>> {
        self.sum_days(None, from, to)
    }

    fn sum_days(&self, repo_id: Option<i64>, from: u32, to: u32) -> Result<Vec<DayStats>> {
        if from > to {
            return Ok(Vec::new());
        }
        let from = from.max(to.saturating_sub(MAX_DAYS - 1));
        let mut acc: BTreeMap<u32, Acc> = (from..=to)
            .map(|day| {
                let mut a = Acc::default();
                a.stats.day = day;
                (day, a)
            })
            .collect();
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM analytics \
             WHERE day BETWEEN ?1 AND ?2 AND (?3 IS NULL OR repo_id = ?3)"
        ))?;
        let mut rows = stmt.query(params![from, to, repo_id])?;
        while let Some(r) = rows.next()? {
            let day: u32 = r.get(0)?;
            let Some(a) = acc.get_mut(&day) else { continue };
            let s = &mut a.stats;
            s.visits = s.visits.saturating_add(count(r.get(1)?));
            for (i, class) in s.requests_by_class.iter_mut().enumerate() {
                *class = class.saturating_add(count(r.get(2 + i)?));
            }
            s.bytes_in = s.bytes_in.saturating_add(count(r.get(7)?));
            s.bytes_out = s.bytes_out.saturating_add(count(r.get(8)?));
            s.wakes = s.wakes.saturating_add(count(r.get(9)?));
            a.sketch.merge(&sketch_from(r.get(10)?));
        }
        Ok(acc
            .into_values()
            .map(|mut a| {
                a.stats.unique_visitors = a.sketch.estimate();
                a.stats
            })
            .collect())
    }
}

/// The last `days` days up to today, as an inclusive range; empty for 0.
fn window(days: u32) -> (u32, u32) {
    let today = utc_day(SystemTime::now());
    if days == 0 {
        return (1, 0);
    }
    let days = days.min(MAX_DAYS);
    (today.saturating_sub(days - 1), today)
}
