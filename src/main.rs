//! `aria-crypt`: the operator's tool for encrypted Aria tables. The code
//! lives in the library's private `tool` module (cargo feature `cli`).

fn main() -> std::process::ExitCode {
    mariadb_aria_crypt::tool_support::main()
}
