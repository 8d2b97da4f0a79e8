//! `tokend-dist-gen OUT_DIR`: writes the man pages, shell completions and
//! system config that packages install (see the library's docs). The man
//! pages are dated from `SOURCE_DATE_EPOCH`, else from the last commit.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: tokend-dist-gen OUT_DIR";
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    // An option is never taken for the output directory (`--help` made a
    // directory of that name).
    match out.to_str() {
        Some("-h" | "--help") => {
            println!(
                "{usage}\nwrites the man pages, shell completions and system config into OUT_DIR"
            );
            return ExitCode::SUCCESS;
        }
        Some(option) if option.starts_with('-') => {
            eprintln!("tokend-dist-gen: unknown option {option}\n{usage}");
            return ExitCode::from(2);
        }
        _ => {}
    }
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let date = match tokend_dist_gen::source_date(epoch.as_deref()) {
        Ok(Some(date)) => date,
        Ok(None) => {
            eprintln!(
                "tokend-dist-gen: the man pages have no date: set SOURCE_DATE_EPOCH \
                 (not a git checkout)"
            );
            String::new()
        }
        Err(e) => {
            eprintln!("tokend-dist-gen: {e}");
            return ExitCode::from(2);
        }
    };
    match tokend_dist_gen::generate(Path::new(&out), &date) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokend-dist-gen: {e}");
            ExitCode::FAILURE
        }
    }
}
