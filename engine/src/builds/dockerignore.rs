//! `.dockerignore` files, with Docker's semantics (moby `patternmatcher` and
//! BuildKit's `dockerignore.ReadAll`):
//!
//! - one pattern per line; a line whose *first* character is `#` is a comment
//!   (`  # x` is a pattern, as in Docker); blank lines are ignored; leading and
//!   trailing whitespace is trimmed;
//! - `!pattern` is an exception that re-includes what earlier patterns excluded;
//!   the last pattern that matches a path decides;
//! - patterns are cleaned like Go's `filepath.Clean` (`./a//b/` is `a/b`,
//!   `a/../b` is `b`) and a leading `/` is dropped: patterns are always relative
//!   to the context root;
//! - `*` matches any run of characters except `/`, `?` one character except `/`,
//!   `[abc]`, `[a-z]` and `[^a-z]` one character of (or not of) a class, and `\x`
//!   the character `x`;
//! - `**` matches any number of directories, including none (`**/*.log` matches
//!   `a.log` and `x/y/a.log`); a trailing `/**` matches everything beneath;
//! - a pattern that matches a directory excludes everything beneath it (`build`
//!   excludes `build/out/app.js`).
//!
//! Unlike Docker, which rejects the whole file, a malformed character class
//! (`[a-`, `[]`) is read as literal text.

/// A parsed `.dockerignore` file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// One cleaned pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// `!pattern`: re-includes what it matches.
    exception: bool,
    /// The cleaned pattern text, without the `!`.
    text: String,
    tokens: Vec<Token>,
}

/// A compiled element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A character matched literally.
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `[...]`: one character (never `/`) in, or with `negated` not in, the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**/` (or `**` followed by more pattern): nothing, or anything ending in `/`.
    AnyDirs,
    /// A trailing `**`: anything at all.
    AnyRest,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file. Never fails: comments, blank lines
    /// and a lone `!` are skipped.
    pub fn parse(text: &str) -> DockerIgnore {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            // Docker checks for comments before trimming.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if rest.is_empty() {
                tracing::debug!("ignoring a lone `!` in .dockerignore");
                continue;
            }
            let mut cleaned = clean(rest);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens = compile(&cleaned);
            patterns.push(Pattern {
                exception,
                text: cleaned,
                tokens,
            });
        }
        DockerIgnore { patterns }
    }

    /// Whether there are no patterns at all (nothing is excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The cleaned patterns in file order, exceptions with their leading `!`.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| {
                if p.exception {
                    format!("!{}", p.text)
                } else {
                    p.text.clone()
                }
            })
            .collect()
    }

    /// Whether `rel_path` (relative to the context root, `/`-separated) is excluded
    /// from the build context. The root itself (`.` or empty) never is.
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        let path = normalize_path(rel_path);
        if path == "." {
            return false;
        }
        let mut excluded = false;
        for pattern in &self.patterns {
            // Only a pattern that could change the verdict needs to be tried.
            if pattern.exception != excluded {
                continue;
            }
            if pattern.matches_path_or_parent(&path) {
                excluded = !pattern.exception;
            }
        }
        excluded
    }

    /// Whether some path strictly below the directory `rel_dir` could be re-included
    /// by an exception. A walker that finds `rel_dir` excluded can skip its contents
    /// when this is `false`; when `true` it must look inside. (Conservative: it may
    /// say `true` when nothing below ends up included.)
    pub fn may_include_under(&self, rel_dir: &str) -> bool {
        let dir = normalize_path(rel_dir);
        let prefix = if dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| can_continue(&p.tokens, &prefix))
    }
}

impl Pattern {
    /// Docker's "matches or parent matches": the path itself or any of its parent
    /// directories matches.
    fn matches_path_or_parent(&self, path: &str) -> bool {
        if matches(&self.tokens, path) {
            return true;
        }
        path.char_indices()
            .filter(|&(_, c)| c == '/')
            .any(|(i, _)| matches(&self.tokens, &path[..i]))
    }
}

/// Cleans a `/`-separated path like Go's `path.Clean`.
fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|last| *last != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// A path to test, cleaned and relative: no leading `/` or `./`, no trailing `/`.
fn normalize_path(p: &str) -> String {
    let cleaned = clean(p);
    match cleaned.strip_prefix('/') {
        Some("") => ".".to_string(),
        Some(rest) => rest.to_string(),
        None => cleaned,
    }
}

/// Compiles a cleaned pattern into tokens.
fn compile(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                // `**/` is the same as `**`: eat the slash.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    tokens.push(Token::AnyRest);
                } else {
                    tokens.push(Token::AnyDirs);
                }
                continue;
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::AnyChar),
            '\\' => match chars.get(i + 1) {
                Some(&next) => {
                    tokens.push(Token::Literal(next));
                    i += 1;
                }
                None => tokens.push(Token::Literal('\\')),
            },
            '[' => match parse_class(&chars, i + 1) {
                Some((token, end)) => {
                    tokens.push(token);
                    i = end;
                }
                None => tokens.push(Token::Literal('[')),
            },
            other => tokens.push(Token::Literal(other)),
        }
        i += 1;
    }
    tokens
}

/// Parses a character class whose body starts at `start` (just after `[`), with Go's
/// `filepath.Match` syntax. Returns the token and the index of the closing `]`, or
/// `None` when the class is malformed.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(i)?;
        if c == ']' && !ranges.is_empty() {
            return Some((Token::Class { negated, ranges }, i));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            if h < lo {
                return None;
            }
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character inside a class; `-` and `]` must be escaped.
fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match *chars.get(i)? {
        '-' | ']' => None,
        '\\' => Some((*chars.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

/// The matcher is a small NFA over the tokens. State `i` (0..=n) is "before token
/// `i`"; state `n + 1 + i` is "inside the `**/` at token `i`, having consumed
/// something that does not end in `/` yet, or wants more".
struct Nfa<'a> {
    tokens: &'a [Token],
}

impl Nfa<'_> {
    fn len(&self) -> usize {
        2 * (self.tokens.len() + 1)
    }

    fn inside(&self, i: usize) -> usize {
        self.tokens.len() + 1 + i
    }

    /// Adds the states reachable without consuming a character.
    fn close(&self, states: &mut [bool]) {
        for i in 0..self.tokens.len() {
            if states[i]
                && matches!(
                    self.tokens[i],
                    Token::Star | Token::AnyDirs | Token::AnyRest
                )
            {
                states[i + 1] = true;
            }
        }
    }

    fn start(&self) -> Vec<bool> {
        let mut states = vec![false; self.len()];
        states[0] = true;
        self.close(&mut states);
        states
    }

    fn step(&self, states: &[bool], c: char) -> Vec<bool> {
        let mut next = vec![false; self.len()];
        for (i, token) in self.tokens.iter().enumerate() {
            if states[i] {
                match token {
                    Token::Literal(x) => {
                        if *x == c {
                            next[i + 1] = true;
                        }
                    }
                    Token::AnyChar => {
                        if c != '/' {
                            next[i + 1] = true;
                        }
                    }
                    Token::Class { negated, ranges } => {
                        let hit = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if c != '/' && hit != *negated {
                            next[i + 1] = true;
                        }
                    }
                    Token::Star => {
                        if c != '/' {
                            next[i] = true;
                        }
                    }
                    Token::AnyRest => next[i] = true,
                    Token::AnyDirs => {
                        if c == '/' {
                            next[i + 1] = true;
                        }
                        next[self.inside(i)] = true;
                    }
                }
            }
            if states[self.inside(i)] {
                if c == '/' {
                    next[i + 1] = true;
                }
                next[self.inside(i)] = true;
            }
        }
        self.close(&mut next);
        next
    }

    fn run(&self, text: &str) -> Vec<bool> {
        let mut states = self.start();
        for c in text.chars() {
            states = self.step(&states, c);
            if !states.iter().any(|&s| s) {
                break;
            }
        }
        states
    }
}

/// Whether the tokens match all of `text`.
fn matches(tokens: &[Token], text: &str) -> bool {
    let nfa = Nfa { tokens };
    nfa.run(text)[tokens.len()]
}

/// Whether the tokens can consume all of `prefix` and still need (or accept) more,
/// i.e. might match some longer path starting with `prefix`.
fn can_continue(tokens: &[Token], prefix: &str) -> bool {
    let nfa = Nfa { tokens };
    let states = nfa.run(prefix);
    states.iter().enumerate().any(|(s, &on)| {
        on && (s != tokens.len() || matches!(tokens.last(), Some(Token::AnyRest | Token::Star)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text)
    }

    #[test]
    fn an_empty_file_excludes_nothing() {
        let di = ignore("");
        assert!(di.is_empty());
        assert!(!di.is_excluded("a"));
        assert!(!di.is_excluded("a/b/c"));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_and_lines_are_trimmed() {
        let di = ignore("# a comment\n\n   \n  node_modules  \r\n#*.md\n");
        assert_eq!(di.patterns(), vec!["node_modules"]);
        assert!(di.is_excluded("node_modules"));
        assert!(!di.is_excluded("README.md"));
    }

    #[test]
    fn a_hash_after_leading_whitespace_is_a_pattern_as_in_docker() {
        let di = ignore("  #notes");
        assert_eq!(di.patterns(), vec!["#notes"]);
        assert!(di.is_excluded("#notes"));
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_ignored() {
        let di = ignore("\u{feff}secret.txt\n");
        assert!(di.is_excluded("secret.txt"));
    }

    #[test]
    fn patterns_are_cleaned_like_filepath_clean() {
        let di = ignore("/abs\n./dot/\na//b/../c\n!./keep/\n");
        assert_eq!(di.patterns(), vec!["abs", "dot", "a/c", "!keep"]);
        assert!(di.is_excluded("abs"));
        assert!(di.is_excluded("dot/x"));
        assert!(di.is_excluded("a/c"));
        assert!(!di.is_excluded("a/b"));
    }

    #[test]
    fn a_lone_exclamation_mark_is_skipped() {
        let di = ignore("!\n! \nx");
        assert_eq!(di.patterns(), vec!["x"]);
    }

    #[test]
    fn a_literal_name_matches_only_that_name_at_the_root() {
        let di = ignore("secret.txt");
        assert!(di.is_excluded("secret.txt"));
        assert!(!di.is_excluded("dir/secret.txt"));
        assert!(!di.is_excluded("secret.txt.bak"));
        assert!(!di.is_excluded("my-secret.txt"));
    }

    #[test]
    fn a_directory_pattern_excludes_everything_beneath_it() {
        let di = ignore("build\nsrc/generated/");
        assert!(di.is_excluded("build"));
        assert!(di.is_excluded("build/out/app.js"));
        assert!(di.is_excluded("src/generated/a/b.rs"));
        assert!(!di.is_excluded("src/main.rs"));
        assert!(!di.is_excluded("builder"));
    }

    #[test]
    fn star_does_not_cross_slashes() {
        let di = ignore("*.md\ndocs/*.txt");
        assert!(di.is_excluded("README.md"));
        assert!(!di.is_excluded("docs/guide.md"));
        assert!(di.is_excluded("docs/a.txt"));
        assert!(!di.is_excluded("docs/sub/a.txt"));
    }

    #[test]
    fn star_alone_excludes_everything() {
        let di = ignore("*");
        assert!(di.is_excluded("a"));
        assert!(di.is_excluded("a/b/c"));
        assert!(di.is_excluded(".hidden"));
    }

    #[test]
    fn star_in_a_directory_segment_excludes_matching_directories() {
        let di = ignore("*/temp*");
        assert!(di.is_excluded("a/temporary.txt"));
        assert!(di.is_excluded("a/temp/x"));
        assert!(!di.is_excluded("temp"));
        assert!(!di.is_excluded("a/b/temp"));
    }

    #[test]
    fn question_mark_matches_one_character_but_not_a_slash() {
        let di = ignore("temp?\na?c");
        assert!(di.is_excluded("temp1"));
        assert!(!di.is_excluded("temp"));
        assert!(!di.is_excluded("temp12"));
        assert!(di.is_excluded("abc"));
        assert!(!di.is_excluded("a/c"));
    }

    #[test]
    fn character_classes_match_one_listed_character() {
        let di = ignore("file[abc].txt");
        assert!(di.is_excluded("filea.txt"));
        assert!(di.is_excluded("filec.txt"));
        assert!(!di.is_excluded("filed.txt"));
        assert!(!di.is_excluded("file.txt"));
        assert!(!di.is_excluded("fileab.txt"));
    }

    #[test]
    fn character_classes_support_ranges_and_negation() {
        let di = ignore("log[0-9]\n!log[^0-4]");
        assert!(di.is_excluded("log3"));
        assert!(!di.is_excluded("log7"));
        assert!(!di.is_excluded("logx"));
        let neg = ignore("x[^a]");
        assert!(neg.is_excluded("xb"));
        assert!(!neg.is_excluded("xa"));
        assert!(!neg.is_excluded("x/"));
    }

    #[test]
    fn escaped_characters_in_classes_and_patterns_are_literal() {
        let di = ignore("a\\*b\n[\\]x]y");
        assert!(di.is_excluded("a*b"));
        assert!(!di.is_excluded("aXb"));
        assert!(di.is_excluded("]y"));
        assert!(di.is_excluded("xy"));
    }

    #[test]
    fn a_malformed_class_is_literal_text() {
        let di = ignore("a[b\nc[]");
        assert!(di.is_excluded("a[b"));
        assert!(di.is_excluded("c[]"));
        assert!(!di.is_excluded("ab"));
    }

    #[test]
    fn double_star_slash_pattern_matches_at_any_depth() {
        let di = ignore("**/*.log");
        assert!(di.is_excluded("a.log"));
        assert!(di.is_excluded("x/a.log"));
        assert!(di.is_excluded("x/y/z/a.log"));
        assert!(!di.is_excluded("a.log.txt"));
        assert!(!di.is_excluded("x/alog"));
    }

    #[test]
    fn double_star_in_the_middle_matches_zero_or_more_directories() {
        let di = ignore("src/**/test");
        assert!(di.is_excluded("src/test"));
        assert!(di.is_excluded("src/a/test"));
        assert!(di.is_excluded("src/a/b/test/data.json"));
        assert!(!di.is_excluded("src/atest"));
        assert!(!di.is_excluded("lib/test"));
    }

    #[test]
    fn trailing_double_star_matches_everything_beneath() {
        let di = ignore("vendor/**");
        assert!(di.is_excluded("vendor/a"));
        assert!(di.is_excluded("vendor/a/b/c"));
        assert!(!di.is_excluded("vendor"));
        assert!(!di.is_excluded("vendored"));
    }

    #[test]
    fn double_star_alone_excludes_everything() {
        let di = ignore("**");
        assert!(di.is_excluded("a"));
        assert!(di.is_excluded("a/b"));
    }

    #[test]
    fn an_exception_re_includes_a_file() {
        let di = ignore("*.md\n!README.md");
        assert!(di.is_excluded("CHANGELOG.md"));
        assert!(!di.is_excluded("README.md"));
    }

    #[test]
    fn the_last_matching_pattern_wins() {
        let di = ignore("*.md\n!README*.md\nREADME-secret.md");
        assert!(di.is_excluded("CHANGELOG.md"));
        assert!(!di.is_excluded("README.md"));
        assert!(!di.is_excluded("README-public.md"));
        assert!(di.is_excluded("README-secret.md"));
        let reversed = ignore("!README.md\n*.md");
        assert!(reversed.is_excluded("README.md"));
    }

    #[test]
    fn an_exception_can_re_include_a_file_inside_an_excluded_directory() {
        let di = ignore("docs\n!docs/keep.md");
        assert!(di.is_excluded("docs"));
        assert!(di.is_excluded("docs/other.md"));
        assert!(!di.is_excluded("docs/keep.md"));
    }

    #[test]
    fn an_exception_for_a_directory_re_includes_its_contents() {
        let di = ignore("*\n!src\n!Dockerfile");
        assert!(!di.is_excluded("src"));
        assert!(!di.is_excluded("src/main.rs"));
        assert!(!di.is_excluded("src/a/b.rs"));
        assert!(!di.is_excluded("Dockerfile"));
        assert!(di.is_excluded("target/debug/app"));
        assert!(di.is_excluded(".env"));
    }

    #[test]
    fn exceptions_with_double_star_re_include_at_any_depth() {
        let di = ignore("node_modules\n!**/package.json");
        assert!(di.is_excluded("node_modules/a/index.js"));
        assert!(!di.is_excluded("node_modules/a/package.json"));
    }

    #[test]
    fn paths_to_test_are_normalised() {
        let di = ignore("a/b");
        assert!(di.is_excluded("./a/b"));
        assert!(di.is_excluded("/a/b/"));
        assert!(di.is_excluded("a//b"));
        assert!(!di.is_excluded("."));
        assert!(!di.is_excluded(""));
    }

    #[test]
    fn the_root_is_never_excluded() {
        let di = ignore("*\n**\n.");
        assert!(!di.is_excluded("."));
        assert!(!di.is_excluded("/"));
    }

    #[test]
    fn dot_dot_patterns_never_match_inside_the_context() {
        let di = ignore("../secret\n/../x");
        assert_eq!(di.patterns(), vec!["../secret", "x"]);
        assert!(!di.is_excluded("secret"));
        assert!(di.is_excluded("x"));
    }

    #[test]
    fn hidden_files_are_matched_by_star() {
        let di = ignore(".*\n!.keep");
        assert!(di.is_excluded(".env"));
        assert!(di.is_excluded(".git/config"));
        assert!(!di.is_excluded(".keep"));
    }

    #[test]
    fn non_ascii_names_match_character_by_character() {
        let di = ignore("caf?.txt\nnaïve*");
        assert!(di.is_excluded("café.txt"));
        assert!(di.is_excluded("naïve-notes"));
    }

    #[test]
    fn may_include_under_is_false_without_exceptions() {
        let di = ignore("node_modules");
        assert!(!di.may_include_under("node_modules"));
    }

    #[test]
    fn may_include_under_sees_exceptions_that_reach_into_a_directory() {
        let di = ignore("docs\n!docs/keep.md\nbuild\n!**/package.json\n");
        assert!(di.may_include_under("docs"));
        assert!(di.may_include_under("build"));
        let narrow = ignore("docs\nlib\n!docs/keep.md");
        assert!(narrow.may_include_under("docs"));
        assert!(!narrow.may_include_under("lib"));
        assert!(!narrow.may_include_under("docs/sub"));
        let starry = ignore("*\n!src/*.rs");
        assert!(starry.may_include_under("src"));
        assert!(!starry.may_include_under("target"));
    }

    #[test]
    fn clean_behaves_like_go_path_clean() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("."), ".");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("a/./b/"), "a/b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("/"), "/");
        assert_eq!(clean("../../a/.."), "../..");
    }
}
