//! The `order-copilot` binary: parses the command line and hands over to [`order_copilot::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    order_copilot::cli::main()
}
