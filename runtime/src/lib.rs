//! spaceport-runtime: the Space model, the pure build/run plan, and everything
//! one machine needs to run Spaces.
//!
//! Modules, in the order a Space passes through them: [`config`] reads the
//! README, [`plan`] turns it into a build and a run (pure), [`folder`]
//! reads a repo from disk for the plan. [`stage`] and [`hardware`] are the
//! shared vocabulary.

pub mod build;
pub mod cli;
pub mod config;
pub mod engine;
pub mod folder;
pub mod gpu;
pub mod hardware;
pub mod hub;
pub mod hubcache;
pub mod local;
pub mod lockfile;
pub mod plan;
pub mod repos;
pub mod run;
pub mod stage;
pub mod state;
