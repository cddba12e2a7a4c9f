//! Plain aligned tables for humans.

/// Prints a header and rows, each column as wide as its widest cell.
pub fn print(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{:<w$}", c, w = widths[i])).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

/// Prints `label: value` pairs with aligned values.
pub fn print_facts(facts: &[(&str, String)]) {
    let width = facts.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, value) in facts {
        println!("{:<width$}  {}", format!("{label}:"), value, width = width + 1);
    }
}
