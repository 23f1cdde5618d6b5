use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = reverie::cli::kubectl_dream::DreamCli::parse();
    match reverie::cli::kubectl_dream::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
