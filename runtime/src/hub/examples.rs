//! A hub with no Spaces yet serves the repo's examples, so a newcomer sees
//! something running: each folder of the examples dir becomes a Space of
//! the admin user, committed and deployed like a push.

use std::path::Path;

use super::Hub;
use super::deploy::Reason;
use crate::engine::ContainerEngine;
use crate::plan::SpaceId;
use crate::repos::RepoKind;
use crate::state::NewRepo;

impl<E: ContainerEngine> Hub<E> {
    /// Creates one Space per example folder when the hub has no Space.
    /// Returns how many were created.
    pub async fn seed_examples(&self, dir: &Path, owner: &str) -> Result<usize, String> {
        if !self
            .store()
            .repos(RepoKind::Space)
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            return Ok(0);
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("failed to read {}: {e}", dir.display()))?
            .flatten()
            .filter(|e| e.path().join("README.md").is_file())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        let mut created = 0;
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(id) = SpaceId::parse(&format!("{owner}/{name}")) else {
                continue;
            };
            let sdk = std::fs::read(e.path().join("README.md"))
                .ok()
                .and_then(|r| crate::config::parse_readme(&r).config)
                .map(|c| c.sdk.to_string());
            let mut new = NewRepo::new(RepoKind::Space, id.clone(), owner);
            new.settings.sdk = sdk;
            let repo = self.store().create_repo(new).map_err(|e| e.to_string())?;
            self.repos()
                .create(RepoKind::Space, &repo.id)
                .await
                .map_err(|e| e.to_string())?;
            self.repos()
                .import_folder(RepoKind::Space, &repo.id, &e.path(), "Add the example")
                .await
                .map_err(|e| e.to_string())?;
            self.request_deploy(&repo.id, Reason::Push);
            created += 1;
        }
        self.refresh_routes();
        Ok(created)
    }
}
