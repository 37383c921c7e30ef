//! The two Kubernetes calls the source watchers make: read a Space's git
//! credentials from the Secret its source names, and move the Space's
//! commit annotation (a JSON merge patch on `metadata.annotations`, so no
//! other field is touched and no field manager takes ownership of more).

use crate::build::GitCredentials;
use crate::crd::{COMMIT_ANNOTATION, Space};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("failed to read the Secret {namespace}/{name}: {source}")]
    Secret {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("the Secret {namespace}/{name} holds neither username/password nor ssh-privatekey")]
    EmptySecret { namespace: String, name: String },
    #[error("failed to set the commit of the Space {namespace}/{name}: {source}")]
    Patch {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// Reads `username`/`password` or `ssh-privatekey` from a Secret.
pub async fn credentials(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<GitCredentials, ApiError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get(name).await.map_err(|source| ApiError::Secret {
        namespace: namespace.into(),
        name: name.into(),
        source,
    })?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|s| !s.is_empty())
    };
    let creds = GitCredentials {
        username: text("username"),
        password: text("password"),
        ssh_private_key: text("ssh-privatekey"),
        known_hosts: text("known_hosts"),
    };
    if creds.password.is_none() && creds.ssh_private_key.is_none() {
        return Err(ApiError::EmptySecret {
            namespace: namespace.into(),
            name: name.into(),
        });
    }
    Ok(creds)
}

/// Sets the Space's commit annotation.
pub async fn set_commit(
    client: &Client,
    namespace: &str,
    name: &str,
    commit: &str,
) -> Result<(), ApiError> {
    let api: Api<Space> = Api::namespaced(client.clone(), namespace);
    let patch = json!({ "metadata": { "annotations": { COMMIT_ANNOTATION: commit } } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| ApiError::Patch {
            namespace: namespace.into(),
            name: name.into(),
            source,
        })?;
    Ok(())
}

/// The commit a Space's annotation holds.
pub fn annotated_commit(space: &Space) -> Option<&str> {
    space
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMMIT_ANNOTATION))
        .map(String::as_str)
}
