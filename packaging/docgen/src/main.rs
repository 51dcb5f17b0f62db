//! mfa-docgen OUTDIR: mfactl's man pages (OUTDIR/man/mfactl.1 and one page
//! per subcommand) and its bash, zsh and fish completions
//! (OUTDIR/completions/), generated from the same clap definitions mfactl
//! parses its command line with, so they cannot drift apart.

// mfactl's command line, compiled here as it is there; the module depends
// on clap alone.
#[path = "../../../mfactl/src/cli.rs"]
#[allow(dead_code)]
mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("usage: mfa-docgen OUTDIR")]
    Usage,
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn run(out: &Path) -> Result<(), Error> {
    let man = out.join("man");
    std::fs::create_dir_all(&man).map_err(write_err(&man))?;
    // mfactl.1 and mfactl-SUBCOMMAND[-SUB].1 for every subcommand.
    clap_mangen::generate_to(cli::Cli::command(), &man).map_err(write_err(&man))?;

    let comp = out.join("completions");
    std::fs::create_dir_all(&comp).map_err(write_err(&comp))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cli::Cli::command();
        clap_complete::generate_to(shell, &mut cmd, "mfactl", &comp).map_err(write_err(&comp))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let result = match (args.next(), args.next()) {
        (Some(out), None) => run(Path::new(&out)),
        _ => Err(Error::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfa-docgen: {e}");
            ExitCode::FAILURE
        }
    }
}
