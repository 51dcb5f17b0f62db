//! Reading codes typed by the user (or piped in by a script).

use std::io::{self, BufRead, IsTerminal};

use crate::error::Error;
use crate::output::Term;

/// A code as typed, without the spaces people put in ("123 456",
/// "1234 5678") or the line end.
pub fn normalize_code(typed: &str) -> String {
    typed.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Reads the next non-empty code from `input`, writing `prompt` first (and
/// again after an empty line). `None` at end of input.
pub fn read_code(
    input: &mut impl BufRead,
    mut prompt: impl FnMut() -> Result<(), Error>,
) -> Result<Option<String>, Error> {
    loop {
        prompt()?;
        let mut line = String::new();
        if input.read_line(&mut line).map_err(Error::Stdin)? == 0 {
            return Ok(None);
        }
        let code = normalize_code(&line);
        if !code.is_empty() {
            return Ok(Some(code));
        }
    }
}

/// Reads one answer from `input` after writing `prompt`: the code, or ""
/// for an empty line (where an empty answer means "send me one"). `None` at
/// end of input.
pub fn read_answer(
    input: &mut impl BufRead,
    prompt: impl FnOnce() -> Result<(), Error>,
) -> Result<Option<String>, Error> {
    prompt()?;
    let mut line = String::new();
    if input.read_line(&mut line).map_err(Error::Stdin)? == 0 {
        return Ok(None);
    }
    Ok(Some(normalize_code(&line)))
}

/// Asks for one answer on stdin with `prompt`, like `prompt_code`, but an
/// empty line is returned as "".
pub fn prompt_answer(term: &Term, prompt: &str) -> Result<Option<String>, Error> {
    let answer = read_answer(&mut io::stdin().lock(), || term.say(prompt))?;
    if answer.is_none() {
        term.say("\n")?;
    }
    Ok(answer)
}

/// Whether stdin is a terminal (a person typing, not a script's pipe).
pub fn stdin_is_terminal() -> bool {
    io::stdin().is_terminal()
}

/// Asks for a code on stdin with `prompt` (shown where `term` talks to
/// people). The line the user types is not repeated anywhere.
pub fn prompt_code(term: &Term, prompt: &str) -> Result<Option<String>, Error> {
    let mut stdin = io::stdin().lock();
    let code = read_code(&mut stdin, || term.say(prompt))?;
    if code.is_none() {
        // End of input leaves the cursor after the prompt; end that line.
        term.say("\n")?;
    }
    Ok(code)
}

/// Like `prompt_code`, but prompts only when stdin is a terminal: a script
/// piping codes in wants no prompts in its output.
pub fn code_from_stdin(term: &Term, prompt: &str) -> Result<Option<String>, Error> {
    if io::stdin().is_terminal() {
        prompt_code(term, prompt)
    } else {
        read_code(&mut io::stdin().lock(), || Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_stripped() {
        assert_eq!(normalize_code("123 456"), "123456");
        assert_eq!(normalize_code(" 1234 5678 \n"), "12345678");
        assert_eq!(normalize_code("\t123456\r\n"), "123456");
        assert_eq!(normalize_code("   \n"), "");
        // Anything else is the daemon's to judge.
        assert_eq!(normalize_code("12a-456"), "12a-456");
    }

    #[test]
    fn reads_codes_line_by_line_and_skips_blank_lines() {
        let mut input = io::Cursor::new("\n123 456\n  \n654321\n");
        let mut prompts = 0;
        let mut ask = || {
            prompts += 1;
            Ok(())
        };
        assert_eq!(
            read_code(&mut input, &mut ask).expect("read").as_deref(),
            Some("123456")
        );
        assert_eq!(
            read_code(&mut input, &mut ask).expect("read").as_deref(),
            Some("654321")
        );
        assert_eq!(read_code(&mut input, &mut ask).expect("read"), None);
        // One prompt per line read, plus the one answered by end of input.
        assert_eq!(prompts, 5);
    }

    #[test]
    fn answers_may_be_empty() {
        let mut input = io::Cursor::new("\n 123 456\n");
        let mut prompts = 0;
        let mut ask = || {
            prompts += 1;
            Ok(())
        };
        assert_eq!(
            read_answer(&mut input, &mut ask).expect("read").as_deref(),
            Some("")
        );
        assert_eq!(
            read_answer(&mut input, &mut ask).expect("read").as_deref(),
            Some("123456")
        );
        assert_eq!(read_answer(&mut input, &mut ask).expect("read"), None);
        assert_eq!(prompts, 3);
    }

    #[test]
    fn last_line_without_newline_counts() {
        let mut input = io::Cursor::new("123456");
        assert_eq!(
            read_code(&mut input, || Ok(())).expect("read").as_deref(),
            Some("123456")
        );
    }
}
