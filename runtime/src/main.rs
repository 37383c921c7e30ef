//! `spaceport`: the single-node server and command line. All logic lives in
//! the library's `cli` module; this only hands over the process.

fn main() -> std::process::ExitCode {
    spaceport_runtime::cli::main()
}
