//! The `mho` binary: everything lives in [`mho::cli`].

fn main() {
    std::process::exit(mho::cli::main());
}
