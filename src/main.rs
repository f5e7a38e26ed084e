//! The `order-copilot` binary: parses the command line and hands over to [`order_copilot::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    order_copilot::cli::main()
}

// The scan builds many small strings (evidence, titles); mimalloc makes that markedly
// cheaper than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
