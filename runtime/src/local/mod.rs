//! Spaces as local processes, for machines without Docker and for
//! `spaceport dev`: the plan of a process ([`plan`]), Python environments
//! made once per set of requirements ([`venv`]), process groups
//! ([`procs`]) and the [`ProcessEngine`], which fills the container-engine
//! seam with processes so the hub above it is unchanged.

pub mod engine;
pub mod plan;
pub mod procs;
pub mod venv;
pub mod watch;

pub use engine::{ProcessEngine, ProcessSettings};
pub use plan::{LocalApp, LocalError, PythonEnv, gradio_demo_name};
pub use venv::{Venv, Venvs};
