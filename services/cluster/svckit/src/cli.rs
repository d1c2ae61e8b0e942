//! Command-line flags: `--flag VALUE` or `--flag=VALUE`, bare switches, `--help`, `--version`.
//! A user's mistake ends in one line naming the flag and exit status 2.

use std::collections::VecDeque;
use std::fmt::Display;
use std::str::FromStr;

/// A mistake in the command line, said in one line.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Args {
    rest: VecDeque<String>,
}

impl Args {
    pub fn new<I: IntoIterator<Item = String>>(argv: I) -> Self {
        Args { rest: argv.into_iter().collect() }
    }

    /// The process's arguments, without the program name.
    pub fn from_env() -> Self {
        Self::new(std::env::args().skip(1))
    }

    /// The next argument; `--flag=value` comes out as `--flag`, its value kept for `value`.
    pub fn next(&mut self) -> Option<String> {
        let arg = self.rest.pop_front()?;
        if arg.starts_with("--") {
            if let Some((flag, value)) = arg.split_once('=') {
                self.rest.push_front(value.to_string());
                return Some(flag.to_string());
            }
        }
        Some(arg)
    }

    /// The value that follows `flag`, read as a `T`.
    pub fn value<T: FromStr>(&mut self, flag: &str) -> Result<T, UsageError>
    where
        T::Err: Display,
    {
        let Some(text) = self.rest.pop_front() else {
            return Err(UsageError(format!("`{flag}` needs a value")));
        };
        text.parse().map_err(|e| UsageError(format!("`{flag} {text}`: {e}")))
    }
}

/// "NAME VERSION on linux/ARCH" (ARCH as Rust names it: riscv64, aarch64, x86_64).
pub fn version_line(name: &str, version: &str) -> String {
    format!("{name} {version} on {}/{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// Print `name: message` and how to get help, and exit 2: the user's mistake.
pub fn usage_exit(name: &str, error: &UsageError) -> ! {
    eprintln!("{name}: {error}\n{name}: see `{name} --help`");
    std::process::exit(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Args {
        Args::new(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_values_and_equals_form() {
        let mut a = args(&["--listen", "127.0.0.1:1", "--n=5", "--once"]);
        assert_eq!(a.next().as_deref(), Some("--listen"));
        assert_eq!(a.value::<String>("--listen").unwrap(), "127.0.0.1:1");
        assert_eq!(a.next().as_deref(), Some("--n"));
        assert_eq!(a.value::<u32>("--n").unwrap(), 5);
        assert_eq!(a.next().as_deref(), Some("--once"));
        assert_eq!(a.next(), None);
    }

    #[test]
    fn missing_or_bad_values_name_the_flag() {
        assert_eq!(args(&[]).value::<u32>("--n"), Err(UsageError("`--n` needs a value".into())));
        let e = args(&["x"]).value::<u32>("--n").unwrap_err();
        assert!(e.0.starts_with("`--n x`: invalid digit"), "{e}");
    }
}
