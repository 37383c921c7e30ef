//! spaceport-proxy: the data plane of spaceport.
//!
//! Every visit to every Space passes through this crate: it routes a request
//! by host or path prefix to the Space's upstream, streams bodies both ways,
//! meters the visit, enforces visibility and embedding rules, and holds
//! requests for a sleeping Space while it wakes. It depends on no other crate
//! of spaceport; the runtime and the controller plug into it through four
//! traits: [`RouteSource`] (which Spaces exist and where they run),
//! [`AccessChecker`] (tokens for private Spaces), [`Waker`] (start a stopped
//! Space) and [`AnalyticsSink`] (where usage reports go). They read
//! [`Proxy::activity`] to decide when a Space may sleep.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use spaceport_proxy::{ChannelRoutes, Proxy, ProxyConfig, Route};
//! let proxy = Proxy::builder(ProxyConfig { domain: Some("spaces.localhost".into()), ..Default::default() })
//!     .build()?;
//! let (updates, source) = ChannelRoutes::new(vec![Route::new("alice/demo".parse()?, "127.0.0.1:7860")]);
//! proxy.drive(source);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! proxy.serve(listener, None, std::future::pending()).await?;
//! # drop(updates); Ok(()) }
//! ```

pub mod access;
pub mod balance;
pub mod config;
pub mod embed;
pub mod forward;
pub mod idle;
pub mod limits;
pub mod meter;
pub mod origin;
pub mod pages;
pub mod route;
mod server;
mod space;
pub mod tls;
mod upstream;
pub mod wake;

pub use access::{AccessChecker, AppPass, DenyAll, StaticTokens};
pub use config::{ConfigError, FileRoutes, ProxyConfig, RoutesFile};
pub use forward::ConnInfo;
pub use idle::Activity;
pub use meter::{AnalyticsSink, HyperLogLog, NoSink, SpaceReport};
pub use route::{
    BoxFuture, ChannelRoutes, Route, RouteError, RouteSource, RouteTable, RouteUpdates,
    RoutesRejected, SpaceId, SpaceState, Visibility,
};
pub use server::{Fallback, Proxy, ProxyBuilder};
pub use wake::{NoWaker, WakeConfig, WakeError, Waker};

/// Resolves on SIGTERM (how Kubernetes and systemd stop a process) or
/// Ctrl-C, for a graceful drain of open connections.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down: draining open connections");
}
