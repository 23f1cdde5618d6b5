use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = reverie::cli::Cli::parse();
    match reverie::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
