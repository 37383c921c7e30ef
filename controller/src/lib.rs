//! spaceport-controller: the Kubernetes side of spaceport.
//!
//! It reconciles `Space` custom resources into Deployments, Services and
//! volumes, builds Spaces through an in-cluster Docker API endpoint, and
//! scales idle Spaces to zero. It reuses the Space model and the pure plan of
//! `spaceport-runtime`; it must not duplicate them.
//!
//! Modules: [`crd`] declares the resource; [`schema`] checks that its schema
//! is structural by Kubernetes' rules; [`manifest`] makes a resource from a
//! Space folder; [`rbac`] declares the API permissions of each component
//! (the Helm chart's RBAC equals it).

pub mod build;
pub mod crd;
pub mod desired;
pub mod lifecycle;
pub mod manifest;
pub mod rbac;
pub mod reconcile;
pub mod schema;

/// The runtime's Space model, re-exported so the CRD embeds the exact same types.
pub use spaceport_runtime::config;
