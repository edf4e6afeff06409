//! Column-aligned text tables, as kubectl prints them: left-aligned
//! columns separated by three spaces, no trailing blanks.

/// Renders `header` and `rows` with every column as wide as its widest cell.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(columns) {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let header = vec!["NAME".to_string(), "STATUS".to_string(), "AGE".to_string()];
        let rows = vec![
            vec!["web-1".to_string(), "Running".to_string(), "5s".to_string()],
            vec!["a".to_string(), "".to_string(), "10m".to_string()],
        ];
        assert_eq!(
            render(&header, &rows),
            "NAME    STATUS    AGE\nweb-1   Running   5s\na                 10m\n"
        );
    }
}
