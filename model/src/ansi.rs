//! ANSI escape sequences in build logs, parsed once with `vte` (the
//! terminal parser of Alacritty) rather than by hand: the text view and the
//! log search strip them, the dashboard turns SGR colours into CSS classes.
//! Every other sequence (cursor moves, erases, OSC titles and hyperlinks,
//! incomplete ones) is dropped; control characters such as tab stay.

use vte::{Params, Parser, Perform};

/// Text split where its colours change: `(CSS classes, text)`, classes
/// being `ansi-bold` and `ansi-fg<SGR code>` (30–37, 90–97), space-separated.
pub fn spans(text: &str) -> Vec<(String, String)> {
    let mut p = Collector::default();
    Parser::new().advance(&mut p, text.as_bytes());
    p.flush();
    p.spans
}

/// The text without escape sequences.
pub fn strip(text: &str) -> String {
    if !text.contains('\u{1b}') {
        return text.to_string();
    }
    spans(text).into_iter().map(|(_, t)| t).collect()
}

#[derive(Default)]
struct Collector {
    spans: Vec<(String, String)>,
    current: String,
    bold: bool,
    fg: Option<u16>,
}

impl Collector {
    fn classes(&self) -> String {
        let mut c = Vec::new();
        if self.bold {
            c.push("ansi-bold".to_string());
        }
        if let Some(fg) = self.fg {
            c.push(format!("ansi-fg{fg}"));
        }
        c.join(" ")
    }

    fn flush(&mut self) {
        if !self.current.is_empty() {
            let text = std::mem::take(&mut self.current);
            self.spans.push((self.classes(), text));
        }
    }
}

impl Perform for Collector {
    fn print(&mut self, c: char) {
        self.current.push(c);
    }

    fn execute(&mut self, byte: u8) {
        // Tab, carriage return and the like are part of the text.
        if byte != 0x07 {
            self.current.push(byte as char);
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        if action != 'm' || ignore || !intermediates.is_empty() {
            return;
        }
        self.flush();
        let codes: Vec<u16> = params.iter().map(|p| p.first().copied().unwrap_or(0)).collect();
        // `ESC[m` is a reset, like `ESC[0m`.
        for code in if codes.is_empty() { vec![0] } else { codes } {
            match code {
                0 => {
                    self.bold = false;
                    self.fg = None;
                }
                1 => self.bold = true,
                22 => self.bold = false,
                30..=37 | 90..=97 => self.fg = Some(code),
                39 => self.fg = None,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(classes: &str, text: &str) -> (String, String) {
        (classes.to_string(), text.to_string())
    }

    #[test]
    fn colours_become_classes_and_resets_end_them() {
        assert_eq!(
            spans("\u{1b}[1;31merror\u{1b}[0m: x \u{1b}[32mok\u{1b}[39m done"),
            vec![s("ansi-bold ansi-fg31", "error"), s("", ": x "), s("ansi-fg32", "ok"), s("", " done")]
        );
        assert_eq!(spans("\u{1b}[90mdim\u{1b}[mplain"), vec![s("ansi-fg90", "dim"), s("", "plain")]);
    }

    #[test]
    fn other_sequences_are_dropped_and_text_stays() {
        assert_eq!(strip("\u{1b}[1;31merror\u{1b}[0m: x"), "error: x");
        assert_eq!(strip("a\u{1b}[2Kb\u{1b}[?25lc"), "abc");
        assert_eq!(strip("\u{1b}]0;title\u{7}text"), "text");
        assert_eq!(strip("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"), "link");
        assert_eq!(strip("plain ✓\ttab"), "plain ✓\ttab");
        assert_eq!(strip("cut \u{1b}["), "cut ");
        // An OSC hyperlink is no colour: the dashboard shows only its text too.
        assert_eq!(spans("\u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\"), vec![s("", "link")]);
    }
}
