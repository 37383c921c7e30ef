//! Repos kept by the hub: bare git repos of Spaces, models and datasets.

mod kind;

pub use kind::RepoKind;
