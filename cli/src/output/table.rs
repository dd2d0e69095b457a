//! Plain-text tables with aligned columns: a header row in capitals, two
//! spaces between columns, no trailing spaces.

/// A table built row by row, rendered with every column as wide as its widest cell.
#[derive(Debug, Clone)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<I, S>(header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells render empty, extra cells are kept.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = width - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key/value lines with the values aligned: `name:     main`.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        out.push_str(format!("{label:<width$}  {value}").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(["NAME", "PARENT", "SIZE"]);
        t.row(["main", "-", "12.0 MiB"]);
        t.row(["feature-long-name", "main", "8.0 KiB"]);
        t.row(["x", "main", ""]);
        assert_eq!(
            t.render(),
            "NAME               PARENT  SIZE\n\
             main               -       12.0 MiB\n\
             feature-long-name  main    8.0 KiB\n\
             x                  main\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(["NAME", "STATE"]);
        assert_eq!(t.render(), "NAME  STATE\n");
    }

    #[test]
    fn fields_align_values() {
        let out = fields(&[("name", "main".into()), ("protected", "no".into())]);
        assert_eq!(out, "name:       main\nprotected:  no\n");
    }
}
