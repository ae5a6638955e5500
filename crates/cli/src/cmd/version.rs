//! `hoist version`: the version and the commit it was built from.

use std::io::Write;

pub fn run(long: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout(), "hoist {long}")?;
    Ok(())
}
