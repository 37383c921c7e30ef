//! Where a Space's commit comes from, for Spaces that follow a git URL:
//! [`poll`] resolves each Space's ref on a schedule, [`webhook`] takes push
//! notifications from GitHub, Gitea and spaceport's own hub. Both move the
//! Space's `spaceport.dev/commit` annotation and nothing else; building the
//! commit is the reconcile's business.
//!
//! [`git`] runs the system git safely against a remote (also used by the
//! image builder to fetch), [`lsremote`] resolves a ref, [`push`] holds the
//! webhooks' pure checks, [`api`] the two Kubernetes calls.

pub mod api;
pub mod git;
pub mod lsremote;
pub mod poll;
pub mod push;
pub mod webhook;
