//! The GET pages: they gather what the pure renderers need from the hub
//! (store, repos, runner, proxy) and answer with HTML.

use axum::extract::{Extension, Path, Query, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;

use super::analytics::{AnalyticsData, GpuRow, Percentiles, histogram_buckets};
use super::gallery::{Card, Filter};
use super::space::{FlavorOption, RepoUse, SettingsData, SpaceData};
use super::{UiState, Viewer, html, layout, not_found};
use crate::config::SpaceConfig;
use crate::engine::ContainerEngine;
use crate::hub::Hub;
use crate::hub::api::auth::{readable, repo_id, writable};
use crate::plan::HubRepoType;
use crate::plan::SpaceId;
use crate::repos::RepoKind;
use crate::state::Repo;
use std::sync::Arc;

type Ui = Extension<Arc<UiState>>;

/// Most log lines a page shows before the live stream takes over.
const LOG_LINES: usize = 300;

/// Days the analytics pages cover.
const ANALYTICS_DAYS: u32 = 30;

/// The Space's README configuration at the commit it serves (or the head
/// of main), cached per commit.
async fn readme<E: ContainerEngine>(
    hub: &Hub<E>,
    ui: &UiState,
    repo: &Repo,
) -> Option<SpaceConfig> {
    let commit = match hub.view(repo).commit.or(repo.settings.commit.clone()) {
        Some(c) => c,
        None => hub
            .repos()
            .head(RepoKind::Space, &repo.id, "main")
            .await
            .ok()
            .flatten()?,
    };
    let key = repo.id.to_string();
    if let Some((c, config)) = ui
        .readmes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        && *c == commit
    {
        return config.clone();
    }
    let config = hub
        .repos()
        .read_file(RepoKind::Space, &repo.id, &commit, "README.md", 1 << 20)
        .await
        .ok()
        .flatten()
        .and_then(|bytes| crate::config::parse_readme(&bytes).config);
    ui.readmes
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, (commit, config.clone()));
    config
}

fn visibility_word(repo: &Repo) -> &'static str {
    match repo.visibility {
        spaceport_proxy::Visibility::Public => "public",
        spaceport_proxy::Visibility::Protected => "protected",
        spaceport_proxy::Visibility::Private => "private",
    }
}

pub async fn gallery<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Response {
    let chrome = viewer.chrome(&ui);
    let repos = hub.store().repos(RepoKind::Space).unwrap_or_default();
    let mut cards = Vec::new();
    for repo in repos {
        if readable(&hub, &viewer.caller, RepoKind::Space, &repo.id).is_err() {
            continue;
        }
        let view = hub.view(&repo);
        let config = readme(&hub, &ui, &repo).await;
        let visits_7d = hub
            .store()
            .analytics(&repo.id, 7)
            .map(|days| days.iter().map(|d| d.visits).sum())
            .unwrap_or(0);
        let c = config.as_ref();
        cards.push(Card {
            id: repo.id.to_string(),
            title: c
                .and_then(|c| c.title.clone())
                .unwrap_or_else(|| repo.id.name().to_owned()),
            emoji: c
                .and_then(|c| c.emoji.clone())
                .unwrap_or_else(|| "🚀".to_owned()),
            color_from: c.and_then(|c| c.color_from.as_ref().map(ToString::to_string)),
            color_to: c.and_then(|c| c.color_to.as_ref().map(ToString::to_string)),
            short_description: c.and_then(|c| c.short_description.clone()),
            sdk: c
                .map(|c| c.sdk.to_string())
                .or_else(|| repo.settings.sdk.clone()),
            stage: view.stage.as_str().to_owned(),
            hardware: view.hardware_requested.clone(),
            tags: c.map(|c| c.tags.clone()).unwrap_or_default(),
            private: repo.private,
            visits_7d,
        });
    }
    let body = super::gallery::render(&cards, &filter, viewer.identity().is_some());
    html(StatusCode::OK, layout::page("Spaces", &chrome, &body))
}

/// The Space of the path, if the viewer may read it.
fn space_of<E: ContainerEngine>(
    hub: &Hub<E>,
    viewer: &Viewer,
    owner: &str,
    name: &str,
) -> Option<Repo> {
    let id = repo_id(RepoKind::Space, owner, name).ok()?;
    readable(hub, &viewer.caller, RepoKind::Space, &id).ok()
}

/// Whether the viewer may change the Space.
pub fn is_owner<E: ContainerEngine>(hub: &Hub<E>, viewer: &Viewer, id: &SpaceId) -> bool {
    viewer.identity().is_some() && writable(hub, &viewer.caller, RepoKind::Space, id).is_ok()
}

async fn repo_use<E: ContainerEngine>(
    hub: &Hub<E>,
    viewer: &Viewer,
    kind: HubRepoType,
    id: &crate::config::RepoId,
) -> RepoUse {
    let repo_kind = match kind {
        HubRepoType::Model => RepoKind::Model,
        HubRepoType::Dataset => RepoKind::Dataset,
        HubRepoType::Space => RepoKind::Space,
    };
    let mut on_hub = None;
    if let Ok(sid) = SpaceId::parse(&id.to_string())
        && readable(hub, &viewer.caller, repo_kind, &sid).is_ok()
    {
        on_hub = Some((0, 0));
        if let Ok(Some(head)) = hub.repos().head(repo_kind, &sid, "main").await
            && let Ok(files) = hub.repos().list_files(repo_kind, &sid, &head).await
        {
            on_hub = Some((files.len(), files.iter().map(|(_, size)| *size).sum()));
        }
    }
    RepoUse {
        kind: kind.cache_prefix(),
        cached: hub.cached_bytes(kind, &id.to_string()),
        id: id.to_string(),
        on_hub,
        mount: format!(
            "{}/{}",
            crate::plan::dockerfile::HF_HUB_CACHE,
            crate::plan::cache_folder(kind, id)
        ),
    }
}

/// Where the page frames the app: always its own host, a separate origin,
/// so the app's scripts cannot act on the hub's pages as the viewer. A
/// private Space's app cannot see the hub's sign-in cookie there, so its
/// URL carries a short-lived ticket for this viewer, which the proxy
/// exchanges for a cookie of the app's own host.
fn frame_url<E: ContainerEngine>(hub: &Hub<E>, viewer: &Viewer, repo: &Repo) -> String {
    let url = hub.config().space_url(&repo.id);
    if repo.visibility != spaceport_proxy::Visibility::Private {
        return url;
    }
    let (Some(identity), Some(session)) = (&viewer.caller.0, &viewer.session_info) else {
        return url;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let ticket = crate::hub::plugs::ticket_key(hub.store()).mint(
        crate::hub::tickets::Kind::Sign,
        &repo.id.to_string(),
        &identity.user.name,
        session.id,
        now + crate::hub::tickets::SIGN_TTL_SECS,
    );
    format!("{url}?{}={ticket}", spaceport_proxy::origin::SIGN_PARAM)
}

async fn space_data<E: ContainerEngine>(
    hub: &Hub<E>,
    ui: &UiState,
    viewer: &Viewer,
    repo: &Repo,
) -> SpaceData {
    let view = hub.view(repo);
    let config = readme(hub, ui, repo).await;
    let c = config.as_ref();
    let owner = is_owner(hub, viewer, &repo.id);
    let mut repos = Vec::new();
    if let Some(c) = c {
        let mut seen = std::collections::BTreeSet::new();
        let wanted = c
            .models
            .iter()
            .map(|m| (HubRepoType::Model, m))
            .chain(c.datasets.iter().map(|d| (HubRepoType::Dataset, d)))
            .chain(
                c.preload_from_hub
                    .iter()
                    .map(|p| (HubRepoType::Model, &p.repo_id)),
            );
        for (kind, id) in wanted {
            if seen.insert((kind == HubRepoType::Model, id.to_string())) {
                repos.push(repo_use(hub, viewer, kind, id).await);
            }
        }
    }
    let tail = |book: Option<Arc<crate::build::LogBook>>| {
        book.map(|b| b.tail(LOG_LINES)).unwrap_or_default()
    };
    let (build_log, run_log) = if owner {
        (
            tail(hub.build_log(&repo.id)),
            tail(hub.runner().logs(&repo.id)),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let last_fill = hub
        .last_fill(&repo.id)
        .map(|m| (m.files, m.bytes_downloaded, m.bytes_reused, m.seconds));
    SpaceData {
        last_fill,
        id: repo.id.to_string(),
        title: c
            .and_then(|c| c.title.clone())
            .unwrap_or_else(|| repo.id.name().to_owned()),
        emoji: c
            .and_then(|c| c.emoji.clone())
            .unwrap_or_else(|| "🚀".to_owned()),
        color_from: c.and_then(|c| c.color_from.as_ref().map(ToString::to_string)),
        color_to: c.and_then(|c| c.color_to.as_ref().map(ToString::to_string)),
        short_description: c.and_then(|c| c.short_description.clone()),
        sdk: c
            .map(|c| c.sdk.to_string())
            .or_else(|| repo.settings.sdk.clone()),
        sdk_version: c.and_then(|c| c.sdk_version.as_ref().map(ToString::to_string)),
        stage: view.stage.as_str().to_owned(),
        message: view.message.clone(),
        hardware: view
            .hardware_current
            .clone()
            .unwrap_or_else(|| view.hardware_requested.clone()),
        visibility: visibility_word(repo).to_owned(),
        app_url: hub.config().space_url(&repo.id),
        frame_url: frame_url(hub, viewer, repo),
        git_url: hub.config().space_page(&repo.id),
        embedding_disabled: c.is_some_and(SpaceConfig::embedding_disabled),
        owner,
        signed_in: viewer.identity().is_some(),
        build_log,
        run_log,
        repos,
    }
}

pub async fn space<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let chrome = viewer.chrome(&ui);
    let Some(repo) = space_of(&hub, &viewer, &owner, &name) else {
        return not_found(&chrome, viewer.identity().is_some());
    };
    let data = space_data(&hub, &ui, &viewer, &repo).await;
    html(
        StatusCode::OK,
        layout::page(&data.title, &chrome, &super::space::render(&data)),
    )
}

#[derive(Debug, Deserialize, Default)]
pub struct SettingsQuery {
    #[serde(default)]
    done: Option<String>,
}

/// The words for a settings form that went through (fixed texts: the
/// query names one, it never supplies words).
fn done_text(done: &str) -> Option<&'static str> {
    Some(match done {
        "hardware" => "Hardware saved.",
        "sleep" => "Sleep time saved.",
        "visibility" => "Visibility saved.",
        "secret" => "Secret saved.",
        "secret-delete" => "Secret deleted.",
        "variable" => "Variable saved.",
        "variable-delete" => "Variable deleted.",
        "restart" => "Restarting.",
        "rebuild" => "Rebuilding from scratch.",
        "pause" => "Paused.",
        _ => return None,
    })
}

/// The settings page's data (also for re-showing it with an error).
pub async fn settings_data<E: ContainerEngine>(
    hub: &Hub<E>,
    ui: &UiState,
    viewer: &Viewer,
    repo: &Repo,
) -> SettingsData {
    let space = space_data(hub, ui, viewer, repo).await;
    let (gpus_total, gpus_free) = {
        let alloc = hub.runner().gpus();
        let alloc = alloc.lock().unwrap_or_else(|p| p.into_inner());
        let total = alloc.gpus().len();
        let free = alloc
            .gpus()
            .iter()
            .filter(|g| alloc.holder(&g.uuid).is_none())
            .count();
        (total, free)
    };
    let catalog = &hub.config().catalog;
    let mut flavors = Vec::new();
    let mut unavailable = 0;
    for name in catalog.names() {
        let Some(f) = catalog.get(name) else { continue };
        if f.gpus as usize > gpus_total {
            unavailable += 1;
            continue;
        }
        let mut summary = format!("{} vCPU, {} GB", f.cpu, f.memory_gb);
        if f.gpus > 0 {
            summary.push_str(&format!(
                ", {} GPU{}{}",
                f.gpus,
                if f.gpus == 1 { "" } else { "s" },
                f.gpu_memory_gb
                    .map(|g| format!(" ({g} GB)"))
                    .unwrap_or_default()
            ));
        }
        flavors.push(FlavorOption {
            name: name.to_owned(),
            summary,
            gpus: f.gpus,
        });
    }
    let secrets = hub
        .store()
        .secrets(&repo.id)
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.key, s.description))
        .collect();
    let variables = hub
        .store()
        .variables(&repo.id)
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.key, v.value, v.description))
        .collect();
    SettingsData {
        space,
        flavors,
        flavors_unavailable: unavailable,
        gpus_total,
        gpus_free,
        hardware_requested: repo
            .settings
            .hardware
            .clone()
            .unwrap_or_else(|| hub.config().plan.default_flavor.clone()),
        sleep_time: hub.sleep_time(repo),
        default_sleep: hub.config().default_sleep_secs,
        paused: repo.settings.paused,
        secrets,
        variables,
        flash: None,
        csrf: viewer.chrome(ui).csrf,
    }
}

pub async fn settings<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<SettingsQuery>,
) -> Response {
    let chrome = viewer.chrome(&ui);
    let Some(repo) = space_of(&hub, &viewer, &owner, &name) else {
        return not_found(&chrome, viewer.identity().is_some());
    };
    if !is_owner(&hub, &viewer, &repo.id) {
        return owners_only(&chrome, &viewer, &repo);
    }
    let mut data = settings_data(&hub, &ui, &viewer, &repo).await;
    data.flash = q.done.as_deref().and_then(done_text).map(str::to_owned);
    html(
        StatusCode::OK,
        layout::page(
            &format!("Settings of {}", repo.id),
            &chrome,
            &super::space::render_settings(&data),
        ),
    )
}

/// 403 (or a sign-in hint) for pages of a Space's writers.
pub fn owners_only(chrome: &layout::Chrome, viewer: &Viewer, repo: &Repo) -> Response {
    let text = if viewer.identity().is_some() {
        format!("Only the owners of {} may see this page.", repo.id)
    } else {
        format!("Sign in as an owner of {} to see this page.", repo.id)
    };
    super::error_page(StatusCode::FORBIDDEN, chrome, "Owners only", &text)
}

fn percentiles(text: &str, metric: &str, space: Option<&str>) -> Option<Percentiles> {
    Percentiles::from_buckets(&histogram_buckets(text, metric, space))
}

const LATENCY: &str = "spaceport_proxy_response_head_duration_seconds";
const WAKE_LATENCY: &str = "spaceport_proxy_wake_duration_seconds";

pub async fn space_analytics<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let chrome = viewer.chrome(&ui);
    let Some(repo) = space_of(&hub, &viewer, &owner, &name) else {
        return not_found(&chrome, viewer.identity().is_some());
    };
    if !is_owner(&hub, &viewer, &repo.id) {
        return owners_only(&chrome, &viewer, &repo);
    }
    let data = space_data(&hub, &ui, &viewer, &repo).await;
    let metrics = hub.proxy().map(|p| p.metrics_text()).unwrap_or_default();
    let id = repo.id.to_string();
    let a = AnalyticsData {
        scope: id.clone(),
        days: hub
            .store()
            .analytics(&repo.id, ANALYTICS_DAYS)
            .unwrap_or_default(),
        latency: percentiles(&metrics, LATENCY, Some(&id)),
        wake_latency: percentiles(&metrics, WAKE_LATENCY, Some(&id)),
        gpus: None,
    };
    let body = format!(
        "{}{}",
        super::space::render_head(&data, "analytics"),
        super::analytics::render(&a)
    );
    html(
        StatusCode::OK,
        layout::page(&format!("Analytics of {}", repo.id), &chrome, &body),
    )
}

/// The GPUs as the allocator last saw them, with their holders.
pub fn gpu_rows<E: ContainerEngine>(hub: &Hub<E>) -> Vec<GpuRow> {
    let alloc = hub.runner().gpus();
    let alloc = alloc.lock().unwrap_or_else(|p| p.into_inner());
    alloc
        .gpus()
        .iter()
        .map(|g| GpuRow {
            index: g.index,
            name: g.name.clone(),
            memory_used: g.memory_used_bytes,
            memory_total: g.memory_total_bytes,
            utilization: g.utilization_percent,
            holder: alloc.holder(&g.uuid).map(ToString::to_string),
        })
        .collect()
}

pub async fn node_analytics<E: ContainerEngine>(
    State(hub): State<Hub<E>>,
    Extension(ui): Ui,
    viewer: Viewer,
) -> Response {
    let chrome = viewer.chrome(&ui);
    let admin = viewer.identity().is_some_and(|i| i.user.admin);
    if !admin {
        let text = if viewer.identity().is_some() {
            "The node's analytics and GPUs are shown to admins. Your Spaces' analytics are on their pages."
        } else {
            "Sign in as an admin to see the node's analytics and GPUs."
        };
        return super::error_page(StatusCode::FORBIDDEN, &chrome, "Admins only", text);
    }
    let metrics = hub.proxy().map(|p| p.metrics_text()).unwrap_or_default();
    let a = AnalyticsData {
        scope: "all Spaces of this node".into(),
        days: hub
            .store()
            .node_analytics(ANALYTICS_DAYS)
            .unwrap_or_default(),
        latency: percentiles(&metrics, LATENCY, None),
        wake_latency: percentiles(&metrics, WAKE_LATENCY, None),
        gpus: Some(gpu_rows(&hub)),
    };
    let body = format!(
        "<h1>Analytics of this node</h1>{}",
        super::analytics::render(&a)
    );
    html(StatusCode::OK, layout::page("Analytics", &chrome, &body))
}
