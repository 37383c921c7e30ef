//! The hub in the cluster: the runtime's hub (repos, git push, the
//! HF-compatible API, the web UI) whose Spaces are `Space` resources that
//! the controller builds and runs.
//!
//! [`backend`] implements the runtime's `SpaceBackend` seam on the
//! Kubernetes API; [`names`] maps hub Space ids to resource names and back;
//! [`serve`] is `spaceport-controller hub`.
//!
//! A hub Space's resource says `source.hub: owner/name`, so the controller
//! clones it from the hub. The controller must therefore reach the hub:
//! give it the hub's in-cluster URL (`--hub-url http://<hub service>.<namespace>.svc:7860`)
//! or its public URL, and a token of a hub user who may read every Space
//! (`--hub-token-file`; the admin token file the hub reads is one) for
//! private ones.

pub mod backend;
pub mod names;
pub mod serve;
