//! `meshrouter genconf`: the documented example configuration with a fresh key.

use std::io::Write;

use anyhow::Context;
use meshrouter::config::{EXAMPLE, EXAMPLE_KEY_LINE};
use meshrouter::core::identity::{NodeKey, SEED_LEN};
use zeroize::Zeroizing;

pub(super) fn run() -> anyhow::Result<()> {
    let mut seed = Zeroizing::new([0u8; SEED_LEN]);
    getrandom::fill(&mut seed[..])
        .map_err(|e| anyhow::anyhow!("cannot get randomness from the OS: {e}"))?;
    let key = NodeKey::from_seed(&seed);
    let key_line = Zeroizing::new(format!("private_key = \"{}\"", &*key.seed_hex()));
    let config = Zeroizing::new(EXAMPLE.replacen(EXAMPLE_KEY_LINE, &key_line, 1));
    std::io::stdout()
        .write_all(config.as_bytes())
        .context("cannot write to standard output")
}
