//! `tokend-dist-gen OUT_DIR`: writes the man pages, shell completions and
//! system config that packages install (see the library's docs).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: tokend-dist-gen OUT_DIR");
        return ExitCode::from(2);
    };
    match tokend_dist_gen::generate(Path::new(&out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokend-dist-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
