//! `plughost-demo [--exit]`: run by `scripts/demo`, which builds everything first.
//! Prints the story step by step, then how to call the API, and serves until Ctrl-C
//! (with `--exit`, stops after the story).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn main() -> ExitCode {
    let exit_after = std::env::args().any(|a| a == "--exit");
    let dir = match std::env::current_exe() {
        Ok(exe) => exe.parent().map(ToOwned::to_owned).unwrap_or_default(),
        Err(err) => {
            eprintln!("plughost-demo: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    let artifacts = plughost_demo::Artifacts::in_profile_dir(&dir);
    let story = match plughost_demo::Story::run(artifacts, Default::default(), &mut out) {
        Ok(story) => story,
        Err(err) => {
            eprintln!("plughost-demo: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    if exit_after {
        println!("\nDone: the story ran end to end.");
        return ExitCode::SUCCESS;
    }
    let _ = story.print_api_help(&mut out);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&stop));
    }
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nStopping.");
    drop(story);
    ExitCode::SUCCESS
}
