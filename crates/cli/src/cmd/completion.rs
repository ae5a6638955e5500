//! `hoist completion SHELL` (clap_complete) and `hoist man DIR` (clap_mangen): generated
//! from the parser's own definitions, so they list exactly what hoist accepts.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

/// Arguments of `hoist completion`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `hoist man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// The directory to write the pages into (created if needed), e.g.
    /// /usr/local/share/man/man1.
    pub dir: PathBuf,
}

/// Print the completion script for a shell.
pub fn completion(a: &Args, mut cmd: clap::Command) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "hoist", &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(())
}

/// Write `hoist.1` and a page per verb (`hoist-copy.1`, `hoist-index-create.1`, ...).
pub fn man(a: &ManArgs, cmd: clap::Command) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("writing man pages into {}", a.dir.display()))?;
    let mut n = 0;
    for e in std::fs::read_dir(&a.dir)?.flatten() {
        if e.path().extension().is_some_and(|x| x == "1") {
            n += 1;
        }
    }
    writeln!(
        std::io::stderr(),
        "{n} man pages in {} (man -l {}/hoist.1)",
        a.dir.display(),
        a.dir.display()
    )?;
    Ok(())
}
