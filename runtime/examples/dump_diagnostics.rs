//! Prints every diagnostic for the README files named on the command line.
fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).expect("readable file");
        for d in spaceport_runtime::config::parse_readme(&bytes).diagnostics {
            println!("{}", d.display(&path));
        }
    }
}
