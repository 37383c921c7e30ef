//! spaceport-runtime: the Space model, the pure build/run plan, and everything
//! one machine needs to run Spaces.

pub mod config;
