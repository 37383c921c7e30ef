//! Headers parsed per second on one core.
//!
//! Parses every real header in tests/fixtures/real, round after round, and
//! reports the median rate over rounds. The anchor, measured in the same run
//! on the same headers, is yaml-rust2's own loader on just the YAML block:
//! what reading the YAML alone costs, without positions, validation or the
//! typed model. Run pinned to one core:
//!
//!     taskset -c 0 cargo bench -p spaceport-runtime --bench parse

use spaceport_runtime::config::{front_matter, parse_readme};
use std::hint::black_box;
use std::time::Instant;

const ROUNDS: usize = 15;
const MIN_ROUND_SECS: f64 = 0.3;

fn rate(headers: &[Vec<u8>], f: &dyn Fn(&[u8])) -> f64 {
    // A fixed number of passes instead of timed rounds, for instruction
    // counting (valgrind --tool=callgrind), where time means nothing.
    if let Some(passes) = std::env::var("PARSE_BENCH_PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let start = Instant::now();
        for _ in 0..passes {
            for h in headers {
                f(black_box(h));
            }
        }
        return (passes * headers.len()) as f64 / start.elapsed().as_secs_f64();
    }
    let mut rates = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut n = 0usize;
        while start.elapsed().as_secs_f64() < MIN_ROUND_SECS {
            for h in headers {
                f(black_box(h));
            }
            n += headers.len();
        }
        rates.push(n as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real");
    let mut headers: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md") && !p.ends_with("SOURCES.md"))
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect();
    headers.sort();
    let bytes: usize = headers.iter().map(Vec::len).sum();
    let spaceport = rate(&headers, &|h| {
        let parsed = parse_readme(h);
        assert!(parsed.config.is_some());
        black_box(parsed);
    });
    let anchor = rate(&headers, &|h| {
        let text = front_matter::decode_text(h).expect("text");
        let block = front_matter::split(&text).expect("block");
        black_box(yaml_rust2::YamlLoader::load_from_str(&block.yaml).expect("yaml"));
    });
    println!(
        "headers: {} real READMEs, {} bytes in all",
        headers.len(),
        bytes
    );
    println!("spaceport parse_readme: {spaceport:.0} headers/s (median of {ROUNDS} rounds)");
    println!("anchor yaml-rust2 YamlLoader (YAML only): {anchor:.0} headers/s");
    println!("ratio spaceport/anchor: {:.2}", spaceport / anchor);
}
