//! LIKE: `%` any run of characters, `_` one, the escape character makes the
//! next one literal; characters compare under the collation, one by one,
//! without padding (trailing spaces count, as in the server).

use super::collation::Collation;

enum Token {
    Any,
    One,
    Char(u32),
}

fn tokens(pattern: &[u32], escape: u32) -> Vec<Token> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        let unit = pattern[i];
        if unit == escape && i + 1 < pattern.len() {
            out.push(Token::Char(pattern[i + 1]));
            i += 2;
            continue;
        }
        out.push(match unit {
            0x25 => Token::Any,
            0x5f => Token::One,
            other => Token::Char(other),
        });
        i += 1;
    }
    out
}

/// Iterative, with one backtrack point: no pattern is exponential.
pub fn matches(text: &[u32], pattern: &[u32], escape: u32, collation: &Collation) -> bool {
    let pattern = tokens(pattern, escape);
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if collation.same(*c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|token| matches!(token, Token::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(text: &str, pattern: &str) -> bool {
        let units = |s: &str| s.chars().map(|c| c as u32).collect::<Vec<_>>();
        matches(
            &units(text),
            &units(pattern),
            '\\' as u32,
            &Collation::binary(),
        )
    }

    #[test]
    fn wildcards_escapes_and_trailing_spaces() {
        assert!(like("abc", "a%"));
        assert!(like("abc", "_b_"));
        assert!(like("abc", "%c"));
        assert!(!like("abc", "%b"));
        assert!(like("a%c", "a\\%c"));
        assert!(!like("abc", "a\\%c"));
        assert!(!like("a ", "a"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("a\\", "a\\"));
        assert!(like("aaab", "%a%b"));
    }
}
