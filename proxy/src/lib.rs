//! spaceport-proxy: the data plane of spaceport.
//!
//! Every visit to every Space passes through this crate: it routes a request
//! by host or path prefix to the Space's upstream, streams bodies both ways,
//! meters the visit, enforces visibility and embedding rules, and holds
//! requests for a sleeping Space while it wakes. It depends on no other crate
//! of spaceport; the runtime and the controller plug into it through traits.
