//! The hub's Spaces as `Space` resources: [`KubeBackend`] implements the
//! runtime's [`SpaceBackend`] by server-side applying one resource per hub
//! Space (field manager `spaceport-hub`), keeping its secret values in a
//! Secret the resource owns, and watching the resources' status for the
//! stage the hub reports.
//!
//! It writes only what the hub owns: the resource's spec, its commit,
//! restart and identity annotations, and the Secret. Building and running
//! are the controller's; this module never touches a Deployment or a Pod.
//!
//! API calls, all in the one namespace it is given: get, patch (apply),
//! delete, list and watch `spaces.spaceport.dev`; patch (apply) and delete
//! `secrets`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use spaceport_runtime::hub::backend::{
    BackendError, BackendFuture, BackendStatus, Deploy, LogKind, Logs, Restart, SpaceBackend,
    Visibility,
};
use spaceport_runtime::plan::SpaceId;
use spaceport_runtime::stage::Stage;
use tokio::sync::broadcast;

use super::names::{
    HUB_SPACE_ANNOTATION, MANAGED_BY_LABEL, MANAGER, check_claim, resource_name, secret_name,
    space_of,
};
use crate::crd::{
    COMMIT_ANNOTATION, HubVolume, HubVolumeKind, Space, SpaceSource, SpaceSpec, Visibility as Vis,
};

pub use crate::crd::{REBUILD_ANNOTATION, RESTART_ANNOTATION};

/// The hub's Spaces on Kubernetes.
#[derive(Debug)]
pub struct KubeBackend {
    namespace: String,
    spaces: Api<Space>,
    secrets: Api<Secret>,
    /// The status of every hub Space the watch has seen.
    known: Mutex<HashMap<SpaceId, BackendStatus>>,
    changes: broadcast::Sender<SpaceId>,
    clock: fn() -> String,
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

impl KubeBackend {
    /// A backend writing to `namespace`. Call [`KubeBackend::watch`] to
    /// follow the resources' status.
    pub fn new(client: Client, namespace: &str) -> Arc<Self> {
        Arc::new(KubeBackend {
            namespace: namespace.to_owned(),
            spaces: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client, namespace),
            known: Mutex::new(HashMap::new()),
            changes: broadcast::channel(256).0,
            clock: now,
        })
    }

    /// Follows the status of the Space resources the hub made, until the
    /// process ends (errors are retried with a backoff).
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let config = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(this.spaces.clone(), config).default_backoff());
            let mut listed: HashSet<SpaceId> = HashSet::new();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::Apply(s)) => {
                        this.saw(&s);
                    }
                    Ok(watcher::Event::Delete(s)) => {
                        if let Some(id) = space_of(s.annotations()) {
                            this.forget(&id);
                        }
                    }
                    Ok(watcher::Event::Init) => listed.clear(),
                    Ok(watcher::Event::InitApply(s)) => {
                        if let Some(id) = this.saw(&s) {
                            listed.insert(id);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        let gone: Vec<SpaceId> = this
                            .lock()
                            .keys()
                            .filter(|id| !listed.contains(*id))
                            .cloned()
                            .collect();
                        gone.iter().for_each(|id| this.forget(id));
                    }
                    Err(e) => {
                        eprintln!("warning: failed to watch the Space resources: {e}");
                    }
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SpaceId, BackendStatus>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes in a resource's status; the hub Space it stands for.
    fn saw(&self, space: &Space) -> Option<SpaceId> {
        let id = space_of(space.annotations())?;
        let status = status_of(space);
        let changed = self.lock().insert(id.clone(), status.clone()) != Some(status);
        if changed {
            let _ = self.changes.send(id.clone());
        }
        Some(id)
    }

    fn forget(&self, id: &SpaceId) {
        if self.lock().remove(id).is_some() {
            let _ = self.changes.send(id.clone());
        }
    }

    fn secret(
        &self,
        name: &str,
        values: &BTreeMap<String, String>,
        owner: Option<&Space>,
    ) -> Secret {
        let mut secret = Secret {
            data: Some(
                values
                    .iter()
                    .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            type_: Some("Opaque".into()),
            ..Secret::default()
        };
        let meta = &mut secret.metadata;
        meta.name = Some(name.to_owned());
        meta.namespace = Some(self.namespace.clone());
        meta.labels = Some([(MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned())].into());
        if let Some(owner) = owner
            && let Some(uid) = owner.meta().uid.clone()
        {
            meta.owner_references = Some(vec![OwnerReference {
                api_version: Space::api_version(&()).into_owned(),
                kind: Space::kind(&()).into_owned(),
                name: owner.name_any(),
                uid,
                ..OwnerReference::default()
            }]);
        }
        secret
    }

    async fn apply_secret(
        &self,
        name: &str,
        values: &BTreeMap<String, String>,
        owner: Option<&Space>,
    ) -> Result<(), BackendError> {
        let secret = self.secret(name, values, owner);
        self.secrets
            .patch(name, &apply_params(), &Patch::Apply(&secret))
            .await
            .map_err(|e| failed(&format!("failed to write the Secret {name}"), e))?;
        Ok(())
    }

    async fn delete_secret(&self, name: &str) -> Result<(), BackendError> {
        match self.secrets.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(failed(&format!("failed to delete the Secret {name}"), e)),
        }
    }

    async fn get(&self, name: &str) -> Result<Option<Space>, BackendError> {
        self.spaces
            .get_opt(name)
            .await
            .map_err(|e| failed(&format!("failed to read the Space resource {name}"), e))
    }

    async fn apply(&self, deploy: Deploy) -> Result<(), BackendError> {
        let name = resource_name(&deploy.space);
        let existing = self.get(&name).await?;
        check_claim(
            &name,
            &self.namespace,
            &deploy.space,
            existing.as_ref().map(|s| s.annotations()),
        )
        .map_err(BackendError::Refused)?;
        let secret = secret_name(&name);
        let desired = self.desired(&name, &deploy, existing.as_ref())?;
        let had_secret = existing
            .as_ref()
            .is_some_and(|s| s.spec.secret_refs.contains(&secret));
        if !deploy.secrets.is_empty() {
            // Before the Space, so that the controller never finds it
            // missing; owned by it once the Space has a uid.
            self.apply_secret(&secret, &deploy.secrets, existing.as_ref())
                .await?;
        }
        let applied = self
            .spaces
            .patch(&name, &apply_params(), &Patch::Apply(&desired))
            .await
            .map_err(|e| failed(&format!("failed to write the Space resource {name}"), e))?;
        if !deploy.secrets.is_empty() && existing.is_none() {
            self.apply_secret(&secret, &deploy.secrets, Some(&applied))
                .await?;
        }
        if deploy.secrets.is_empty() && had_secret {
            self.delete_secret(&secret).await?;
        }
        self.saw(&applied);
        Ok(())
    }

    /// The resource the hub wants for a deploy: its spec and annotations.
    fn desired(
        &self,
        name: &str,
        deploy: &Deploy,
        existing: Option<&Space>,
    ) -> Result<Space, BackendError> {
        let Deploy {
            space,
            commit,
            hardware,
            sleep_time,
            visibility,
            paused,
            variables,
            secrets,
            volumes,
            restart,
        } = deploy;
        let volumes = volumes
            .iter()
            .map(|v| {
                let kind = match v.kind.as_str() {
                    "model" => HubVolumeKind::Model,
                    "dataset" => HubVolumeKind::Dataset,
                    other => {
                        return Err(BackendError::Refused(format!(
                            "volumes of type '{other}' cannot be mounted in the cluster: mount a model or a dataset"
                        )));
                    }
                };
                Ok(HubVolume {
                    kind,
                    repo: v.source.clone(),
                    revision: v.revision.clone(),
                    mount_path: Some(v.mount_path.clone()),
                    path: v.path.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let spec = SpaceSpec {
            config: None,
            source: SpaceSource {
                hub: Some(space.to_string()),
                ..SpaceSource::default()
            },
            hardware: hardware.clone(),
            sleep_time_seconds: Some(*sleep_time),
            visibility: match visibility {
                Visibility::Public => Vis::Public,
                Visibility::Protected => Vis::Protected,
                Visibility::Private => Vis::Private,
            },
            replicas: None,
            paused: *paused,
            secret_refs: if secrets.is_empty() {
                Vec::new()
            } else {
                vec![secret_name(name)]
            },
            config_map_refs: Vec::new(),
            variables: variables.clone(),
            storage: None,
            volumes,
        };
        let mut resource = Space::new(name, spec);
        let mut annotations = BTreeMap::from([
            (COMMIT_ANNOTATION.to_owned(), commit.clone()),
            (HUB_SPACE_ANNOTATION.to_owned(), space.to_string()),
        ]);
        // A request once made stays as it was (applying without it would
        // remove it); a new one gets the time now.
        let kept = |key: &str| existing.and_then(|s| s.annotations().get(key).cloned());
        let (restart_at, rebuild_at) = match restart {
            Restart::No => (kept(RESTART_ANNOTATION), kept(REBUILD_ANNOTATION)),
            Restart::Yes => (Some((self.clock)()), kept(REBUILD_ANNOTATION)),
            Restart::Factory => (kept(RESTART_ANNOTATION), Some((self.clock)())),
        };
        if let Some(t) = restart_at {
            annotations.insert(RESTART_ANNOTATION.to_owned(), t);
        }
        if let Some(t) = rebuild_at {
            annotations.insert(REBUILD_ANNOTATION.to_owned(), t);
        }
        let meta = resource.meta_mut();
        meta.namespace = Some(self.namespace.clone());
        meta.annotations = Some(annotations);
        meta.labels = Some([(MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned())].into());
        Ok(resource)
    }

    async fn remove(&self, space: &SpaceId) -> Result<(), BackendError> {
        let name = resource_name(space);
        let Some(existing) = self.get(&name).await? else {
            self.forget(space);
            return Ok(());
        };
        check_claim(&name, &self.namespace, space, Some(existing.annotations()))
            .map_err(BackendError::Refused)?;
        match self.spaces.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => {
                return Err(failed(
                    &format!("failed to delete the Space resource {name}"),
                    e,
                ));
            }
        }
        // The owner reference removes it too; a Secret written before its
        // Space had a uid has none.
        if existing.spec.secret_refs.contains(&secret_name(&name)) {
            self.delete_secret(&secret_name(&name)).await?;
        }
        self.forget(space);
        Ok(())
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

fn failed(what: &str, e: kube::Error) -> BackendError {
    match e {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 409 | 422) => {
            BackendError::Refused(format!("{what}: {}", s.message))
        }
        e => BackendError::Failed(format!("{what}: {e}")),
    }
}

/// The hub's view of a resource's status.
pub fn status_of(space: &Space) -> BackendStatus {
    let status = space.status.clone().unwrap_or_default();
    match status.stage {
        Some(stage) => BackendStatus {
            stage,
            message: status.message,
            commit: status.observed_commit,
            url: status.url,
        },
        None => BackendStatus {
            stage: Stage::Building,
            message: Some("waiting for the controller to take up the Space".into()),
            commit: status.observed_commit,
            url: status.url,
        },
    }
}

impl SpaceBackend for KubeBackend {
    fn deploy(&self, deploy: Deploy) -> BackendFuture<'_, ()> {
        Box::pin(self.apply(deploy))
    }

    fn delete<'a>(&'a self, space: &'a SpaceId) -> BackendFuture<'a, ()> {
        Box::pin(self.remove(space))
    }

    fn status(&self, space: &SpaceId) -> Option<BackendStatus> {
        self.lock().get(space).cloned()
    }

    fn subscribe(&self) -> broadcast::Receiver<SpaceId> {
        self.changes.subscribe()
    }

    fn logs(&self, space: &SpaceId, kind: LogKind) -> Logs {
        let name = resource_name(space);
        let ns = &self.namespace;
        Logs::Unavailable(match kind {
            LogKind::Build => format!(
                "build logs of Spaces in the cluster are not served by the hub: the controller serves them at /logs/{ns}/{name}/build"
            ),
            LogKind::Run => format!(
                "run logs of Spaces in the cluster are not served by the hub: see `kubectl logs -n {ns} deployment/{name}`"
            ),
        })
    }
}
