//! The `spaceport-controller` binary answers --help and --version.

use std::process::Command;

#[test]
fn help_and_version_work() {
    let bin = env!("CARGO_BIN_EXE_spaceport-controller");
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Kubernetes"));
    let version = Command::new(bin).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("spaceport-controller 0."));
}
