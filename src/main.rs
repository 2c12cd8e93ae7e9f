//! The `wangge` command. Thin: parse the command line and hand over to the library.

mod cli;

fn main() -> std::process::ExitCode {
    wangge::memory::keep_freed_pages_for_reuse();
    cli::run()
}
