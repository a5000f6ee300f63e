//! `rafting`: the RAFTiNG binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::SUCCESS
}
