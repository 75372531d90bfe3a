//! The property tests' runners: a fixed seed and case count by default, so a
//! run is reproducible and CI's time is known, and two environment variables
//! to hunt for bugs with more (`TEVENT_CASES=50000`) or other
//! (`TEVENT_SEED=7`) random cases. A failure prints the shrunk case and the
//! seed that found it.

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// A runner for `default_cases` cases from the seed `default_seed` (each
/// overridden by `TEVENT_CASES` / `TEVENT_SEED`), with no failure file.
pub fn runner(default_cases: u32, default_seed: u8) -> TestRunner {
    let cases = env_u64("TEVENT_CASES").map_or(default_cases, |n| {
        u32::try_from(n).expect("TEVENT_CASES fits in u32")
    });
    let seed = env_u64("TEVENT_SEED").unwrap_or(u64::from(default_seed));
    let mut bytes = [default_seed; 32];
    if seed != u64::from(default_seed) {
        println!("seed {seed}");
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&seed.to_le_bytes());
        }
    }
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
    )
}
