//! `hoist version`.

use std::io::Write;

pub fn run() -> anyhow::Result<()> {
    writeln!(std::io::stdout(), "hoist {}", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
