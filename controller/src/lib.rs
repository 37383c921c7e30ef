//! spaceport-controller: the Kubernetes side of spaceport.
//!
//! It reconciles `Space` custom resources into Deployments, Services and
//! volumes, builds Spaces through an in-cluster Docker API endpoint, and
//! scales idle Spaces to zero. It reuses the Space model and the pure plan of
//! `spaceport-runtime`; it must not duplicate them.
//!
//! Modules: [`crd`] declares the resource; [`schema`] checks that its schema
//! is structural by Kubernetes' rules; [`manifest`] makes a resource from a
//! Space folder. The reconcile is a pipeline: [`lifecycle`] (sleep and
//! wake) and [`builds`] (is a build due) decide, [`desired`] builds the
//! objects, [`reconcile`] applies them and writes the status. [`build`] makes
//! images through a Docker API endpoint, [`source`] watches git sources
//! (polling and push webhooks), [`leader`] elects one working replica, and
//! [`operator`] with [`http`] and [`metrics`] wires `spaceport-controller
//! run`. [`proxy`] runs the spaceport proxy on routes from the cluster;
//! [`hub`] is the hub with its Spaces on Kubernetes; [`rbac`] declares the
//! API permissions of each component (the Helm chart's RBAC equals it).

pub mod build;
pub mod builds;
pub mod conditions;
pub mod crd;
pub mod desired;
pub mod http;
pub mod hub;
pub mod leader;
pub mod lifecycle;
pub mod manifest;
pub mod metrics;
pub mod operator;
pub mod proxy;
pub mod rbac;
pub mod reconcile;
pub mod schema;
pub mod source;

/// The runtime's Space model, re-exported so the CRD embeds the exact same types.
pub use spaceport_runtime::config;
