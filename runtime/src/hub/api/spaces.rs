//! A Space's runtime and settings: stage, hardware, sleep time, pause and
//! restart, secrets and variables.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{ReadableSpace, WritableSpace};
use super::{ApiError, ApiResult, JsonBody};
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::deploy::Reason;
use crate::repos::RepoKind;
use crate::state::Repo;

/// The runtime JSON (`SpaceRuntime` in the client).
pub fn runtime_json<E: ContainerEngine>(hub: &Hub<E>, repo: &Repo) -> Value {
    let view = hub.view(repo);
    let mut v = json!({
        "stage": view.stage.as_str(),
        "hardware": {
            "current": view.hardware_current,
            "requested": view.hardware_requested,
        },
        "storage": null,
        "gcTimeout": if view.sleep_time > 0 { Value::from(view.sleep_time) } else { Value::Null },
        "replicas": { "current": 1, "requested": 1 },
        "devMode": repo.settings.dev_mode,
        "domains": [{
            "domain": repo.id.host(&hub.config().domain),
            "stage": "READY",
        }],
        "sha": view.commit,
    });
    if let Some(m) = view.message {
        v["errorMessage"] = Value::from(m);
    }
    if !repo.settings.volumes.is_empty() {
        v["volumes"] = repo
            .settings
            .volumes
            .iter()
            .map(|vol| {
                let mut j = serde_json::to_value(vol).unwrap_or(Value::Null);
                j["readOnly"] = Value::from(true);
                j
            })
            .collect();
    }
    v
}

#[derive(Debug, Deserialize)]
pub struct VolumesRequest {
    volumes: Vec<Value>,
}

/// `PUT /api/spaces/{id}/volumes` (`set_space_volumes`): the hub repos
/// mounted, read-only, at paths of the owner's choice; the Space restarts
/// with them.
pub async fn set_volumes<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<VolumesRequest>,
) -> ApiResult<Json<Value>> {
    if repo.settings.sdk.as_deref() == Some("static") {
        return Err(ApiError::bad_request(
            "volumes are not supported on static Spaces",
        ));
    }
    if body.volumes.len() > 32 {
        return Err(ApiError::bad_request("at most 32 volumes"));
    }
    let mut volumes = Vec::new();
    for raw in body.volumes {
        if raw["readOnly"] == Value::Bool(false) && raw["type"] != "bucket" {
            return Err(ApiError::bad_request(
                "repos are mounted read-only; leave readOnly out or set it true",
            ));
        }
        let vol: crate::plan::ApiVolume = serde_json::from_value(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid volume: {e}")))?;
        vol.validate().map_err(ApiError::bad_request)?;
        if volumes
            .iter()
            .any(|v: &crate::plan::ApiVolume| v.mount_path == vol.mount_path)
        {
            return Err(ApiError::bad_request(format!(
                "two volumes at {}",
                vol.mount_path
            )));
        }
        volumes.push(vol);
    }
    let repo = hub
        .store()
        .update_repo(RepoKind::Space, &repo.id, |s| s.volumes = volumes)?;
    hub.request_deploy(&repo.id, Reason::Restart);
    Ok(Json(runtime_json(&hub, &repo)))
}

/// `DELETE /api/spaces/{id}/volumes`: no more mounted repos.
pub async fn delete_volumes<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
) -> ApiResult<Json<Value>> {
    if repo.settings.volumes.is_empty() {
        return Err(ApiError::bad_request("the Space has no volumes"));
    }
    let repo = hub
        .store()
        .update_repo(RepoKind::Space, &repo.id, |s| s.volumes.clear())?;
    hub.request_deploy(&repo.id, Reason::Restart);
    Ok(Json(runtime_json(&hub, &repo)))
}

pub async fn runtime<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    ReadableSpace(repo): ReadableSpace,
) -> ApiResult<Json<Value>> {
    Ok(Json(runtime_json(&hub, &repo)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareRequest {
    flavor: String,
    #[serde(default)]
    sleep_time_seconds: Option<i64>,
}

pub async fn hardware<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<HardwareRequest>,
) -> ApiResult<Json<Value>> {
    let repo = hub.set_hardware(&repo, &body.flavor, body.sleep_time_seconds)?;
    Ok(Json(runtime_json(&hub, &repo)))
}

pub(crate) fn check_sleep(seconds: i64) -> ApiResult<()> {
    if seconds == -1 || (1..=10 * 365 * 24 * 3600).contains(&seconds) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid sleep time {seconds}: give a number of seconds above 0, or -1 for never"
        )))
    }
}

#[derive(Debug, Deserialize)]
pub struct SleepRequest {
    seconds: i64,
}

pub async fn sleeptime<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<SleepRequest>,
) -> ApiResult<Json<Value>> {
    let repo = hub.set_sleep_time(&repo, body.seconds)?;
    Ok(Json(runtime_json(&hub, &repo)))
}

pub async fn pause<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
) -> ApiResult<Json<Value>> {
    let repo = hub.pause(&repo.id).await?;
    Ok(Json(runtime_json(&hub, &repo)))
}

#[derive(Debug, Deserialize)]
pub struct RestartQuery {
    #[serde(default)]
    factory: Option<String>,
}

pub async fn restart<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    Query(q): Query<RestartQuery>,
) -> ApiResult<Json<Value>> {
    let factory = q
        .factory
        .as_deref()
        .is_some_and(|f| matches!(f, "true" | "1" | "True"));
    let repo = hub.restart(&repo.id, factory).await?;
    Ok(Json(runtime_json(&hub, &repo)))
}

#[derive(Debug, Deserialize)]
pub struct KeyValue {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct KeyOnly {
    key: String,
}

pub async fn secrets<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
) -> ApiResult<Json<Value>> {
    // Keyed by name; values are never returned.
    let mut map = serde_json::Map::new();
    for s in hub.store().secrets(&repo.id)? {
        map.insert(
            s.key,
            json!({
                "description": s.description,
                "updatedAt": crate::hub::api::repos::iso_time(s.updated_at),
            }),
        );
    }
    Ok(Json(Value::Object(map)))
}

pub async fn add_secret<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<KeyValue>,
) -> ApiResult<Json<Value>> {
    let value = body.value.unwrap_or_default();
    hub.store()
        .set_secret(&repo.id, &body.key, &value, body.description.as_deref())?;
    hub.settings_changed(&repo.id);
    Ok(Json(json!({})))
}

pub async fn delete_secret<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<KeyOnly>,
) -> ApiResult<Json<Value>> {
    if hub.store().delete_secret(&repo.id, &body.key)? {
        hub.settings_changed(&repo.id);
    }
    Ok(Json(json!({})))
}

fn variables_json<E: ContainerEngine>(hub: &Hub<E>, repo: &Repo) -> ApiResult<Value> {
    let mut map = serde_json::Map::new();
    for v in hub.store().variables(&repo.id)? {
        map.insert(
            v.key,
            json!({
                "value": v.value,
                "description": v.description,
                "updatedAt": crate::hub::api::repos::iso_time(v.updated_at),
            }),
        );
    }
    Ok(Value::Object(map))
}

pub async fn variables<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
) -> ApiResult<Json<Value>> {
    Ok(Json(variables_json(&hub, &repo)?))
}

pub async fn add_variable<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<KeyValue>,
) -> ApiResult<Json<Value>> {
    let value = body
        .value
        .ok_or_else(|| ApiError::bad_request("a variable needs a \"value\""))?;
    hub.store()
        .set_variable(&repo.id, &body.key, &value, body.description.as_deref())?;
    hub.settings_changed(&repo.id);
    Ok(Json(variables_json(&hub, &repo)?))
}

pub async fn delete_variable<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    JsonBody(body): JsonBody<KeyOnly>,
) -> ApiResult<Json<Value>> {
    if hub.store().delete_variable(&repo.id, &body.key)? {
        hub.settings_changed(&repo.id);
    }
    Ok(Json(variables_json(&hub, &repo)?))
}

/// The flavors this hub offers.
pub async fn hardware_list<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = hub
        .config()
        .catalog
        .names()
        .into_iter()
        .filter_map(|n| hub.config().catalog.get(n).map(|f| (n, f)))
        .map(|(n, f)| {
            json!({
                "name": n,
                "prettyName": n,
                "cpu": format!("{} vCPU", f.cpu),
                "ram": format!("{} GB", f.memory_gb),
                "accelerator": (f.gpus > 0).then(|| json!({
                    "type": "gpu",
                    "model": f.gpu_model.clone().unwrap_or_else(|| "any".into()),
                    "quantity": f.gpus.to_string(),
                    "vram": f.gpu_memory_gb.map(|g| format!("{g} GB")).unwrap_or_default(),
                    "manufacturer": "NVIDIA",
                })),
                "unitCostMicroUSD": 0,
                "unitCostUSD": 0.0,
                "unitLabel": "hour",
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

impl<E: ContainerEngine> Hub<E> {
    /// Sets a Space's flavor (and sleep time, when given); a change of
    /// flavor restarts a Space that is not paused. For the API and the UI.
    pub fn set_hardware(&self, repo: &Repo, flavor: &str, sleep: Option<i64>) -> ApiResult<Repo> {
        if self.config().catalog.get(flavor).is_none() {
            return Err(ApiError::bad_request(format!(
                "unknown hardware flavor '{flavor}': this hub offers {}",
                self.config().catalog.names().join(", ")
            )));
        }
        if let Some(s) = sleep {
            check_sleep(s)?;
        }
        let changed = repo.settings.hardware.as_deref() != Some(flavor);
        let repo = self.store().update_repo(RepoKind::Space, &repo.id, |s| {
            s.hardware = Some(flavor.to_owned());
            if let Some(t) = sleep {
                s.sleep_time = Some(t);
            }
        })?;
        if changed && !repo.settings.paused {
            self.request_deploy(&repo.id, Reason::Restart);
        }
        Ok(repo)
    }

    /// Sets a Space's sleep time in seconds (-1: never).
    pub fn set_sleep_time(&self, repo: &Repo, seconds: i64) -> ApiResult<Repo> {
        check_sleep(seconds)?;
        let repo = self
            .store()
            .update_repo(RepoKind::Space, &repo.id, |s| s.sleep_time = Some(seconds))?;
        self.entry(&repo.id).bump();
        self.settings_synced(&repo.id);
        Ok(repo)
    }

    /// Pauses a Space: it stops and stays stopped until a restart.
    pub async fn pause(&self, space: &crate::plan::SpaceId) -> ApiResult<Repo> {
        let repo = self
            .store()
            .update_repo(RepoKind::Space, space, |s| s.paused = true)?;
        let entry = self.entry(&repo.id);
        entry.cancel_build("the Space was paused");
        if let Some(backend) = self.backend().cloned() {
            let _one_at_a_time = entry.deploying.lock().await;
            self.deploy_remote(&backend, &repo.id, crate::hub::backend::Restart::No)
                .await
                .map_err(|e| ApiError::new(http::StatusCode::BAD_GATEWAY, e))?;
            entry.bump();
            return Ok(repo);
        }
        self.inner.statics.stop(&repo.id);
        if self.inner.runner.status(&repo.id).is_some() {
            let _ = self.inner.runner.stop(&repo.id).await;
        }
        entry.set_serving(crate::hub::Serving::Nothing);
        self.refresh_routes();
        Ok(repo)
    }

    /// Restarts a Space (lifting a pause), rebuilding without cache when
    /// `factory`.
    pub async fn restart(&self, space: &crate::plan::SpaceId, factory: bool) -> ApiResult<Repo> {
        let repo = self
            .store()
            .update_repo(RepoKind::Space, space, |s| s.paused = false)?;
        let reason = if factory {
            Reason::FactoryRebuild
        } else {
            Reason::Restart
        };
        self.entry(&repo.id).bump();
        self.request_deploy(&repo.id, reason);
        Ok(repo)
    }

    /// Secrets or variables changed: a running Space restarts with them.
    pub fn settings_changed(&self, space: &crate::plan::SpaceId) {
        let paused = self
            .store()
            .repo(RepoKind::Space, space)
            .ok()
            .flatten()
            .is_none_or(|r| r.settings.paused || r.settings.commit.is_none());
        if !paused {
            self.request_deploy(space, Reason::Restart);
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AnalyticsQuery {
    #[serde(default)]
    days: Option<u32>,
}

fn day_json(d: &crate::state::DayStats) -> Value {
    let date = crate::build::utc_timestamp(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(d.day) * 86_400),
    );
    json!({
        "day": d.day,
        "date": date.split(' ').next().unwrap_or_default(),
        "visits": d.visits,
        "uniqueVisitors": d.unique_visitors,
        "requests": {
            "1xx": d.requests_by_class[0],
            "2xx": d.requests_by_class[1],
            "3xx": d.requests_by_class[2],
            "4xx": d.requests_by_class[3],
            "5xx": d.requests_by_class[4],
        },
        "bytesIn": d.bytes_in,
        "bytesOut": d.bytes_out,
        "wakes": d.wakes,
    })
}

/// Usage of a Space per UTC day (its owners only): visits, unique
/// visitors, requests by status class, bytes, wakes.
pub async fn analytics<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    WritableSpace(repo): WritableSpace,
    Query(q): Query<AnalyticsQuery>,
) -> ApiResult<Json<Value>> {
    let days = q.days.unwrap_or(30).clamp(1, 366);
    let stats = hub.store().analytics(&repo.id, days)?;
    let mut totals = json!({"visits": 0u64, "wakes": 0u64, "bytesIn": 0u64, "bytesOut": 0u64});
    for d in &stats {
        for (k, v) in [
            ("visits", d.visits),
            ("wakes", d.wakes),
            ("bytesIn", d.bytes_in),
            ("bytesOut", d.bytes_out),
        ] {
            totals[k] = Value::from(totals[k].as_u64().unwrap_or(0) + v);
        }
    }
    Ok(Json(json!({
        "space": repo.id.to_string(),
        "days": stats.iter().map(day_json).collect::<Vec<_>>(),
        "totals": totals,
    })))
}
