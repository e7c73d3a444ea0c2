//! Reading observations from the long-format CSV that trusts export, before anything is sent.
//!
//! ```text
//! ods_code,measure_code,period_start,period_end,value,numerator,denominator[,value_stream_id]
//! RXX,FFT_POSITIVE,2024-04-01,2024-04-30,,912,960
//! ```
//!
//! The header is fixed: these names in this order (case does not matter). The trailing optional
//! columns — `numerator`, `denominator`, `value_stream_id` — may be left off from the right, so
//! `ods_code,…,value` is enough for continuous measures. Fields follow RFC 4180 (quotes around
//! fields with commas, quotes or line breaks; `""` for a quote); lines may end in LF, CRLF or CR;
//! surrounding spaces of a field are ignored; blank lines are skipped.
//!
//! Two kinds of problem are told apart:
//! - [`FileError`]: the whole file is refused (not UTF-8, no header, wrong header). Nothing of it
//!   may be sent.
//! - [`Rejection`]: one row is wrong (columns, a date, a number, a missing field). That row is not
//!   sent; the rest are.
//!
//! Line numbers count physical lines from 1 (the header), so a row is named by the line it starts
//! on even when a quoted field before it spans several lines.

use std::fmt;

use ics_proto::events::v1::Date;
use ics_proto::metrics::v1::{IngestRejection, ObservationInput};

use crate::args::parse_date;

/// The header, in order. The first [`REQUIRED_COLUMNS`] must be present.
pub const COLUMNS: [&str; 8] = [
    "ods_code",
    "measure_code",
    "period_start",
    "period_end",
    "value",
    "numerator",
    "denominator",
    "value_stream_id",
];

/// `ods_code` … `value`; the columns after it are optional from the right.
pub const REQUIRED_COLUMNS: usize = 5;

/// The gRPC code a row refused locally would have had from the server.
pub const LOCAL_REJECTION_CODE: &str = "INVALID_ARGUMENT";

const BOM: char = '\u{feff}';

/// Why a whole file is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The bytes are not UTF-8 from `column` (in bytes, from 1) of `line`.
    Encoding { line: usize, column: usize },
    /// No header line at all.
    Empty,
    /// The header's `column`-th name (from 1) is not the expected one. `expected` or `found` is
    /// empty when the header is too short or too long.
    Header {
        line: usize,
        column: usize,
        expected: String,
        found: String,
    },
    /// The header line is not well-formed CSV (e.g. an unclosed quote).
    MalformedHeader { line: usize, reason: String },
}

impl fmt::Display for FileError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Encoding { line, column } => write!(
                formatter,
                "line {line}: the file is not valid UTF-8 (byte {column} of the line); save it \
                 as UTF-8 and try again"
            ),
            FileError::Empty => write!(
                formatter,
                "line 1: the file is empty; expected the header {}",
                COLUMNS.join(",")
            ),
            FileError::Header {
                line,
                column,
                expected,
                found,
            } => {
                let expected = if expected.is_empty() {
                    "no more columns".to_owned()
                } else {
                    format!("'{expected}'")
                };
                let found = if found.is_empty() {
                    "nothing".to_owned()
                } else {
                    format!("'{found}'")
                };
                write!(
                    formatter,
                    "line {line}: header column {column}: expected {expected}, found {found}; \
                     the header is {} (the last three columns may be left off from the right)",
                    COLUMNS.join(",")
                )
            }
            FileError::MalformedHeader { line, reason } => {
                write!(
                    formatter,
                    "line {line}: the header is not valid CSV: {reason}"
                )
            }
        }
    }
}

impl std::error::Error for FileError {}

/// One problem with one row (or, from the server, one observation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The CSV line the row starts on; 0 when the server named an observation that was not sent.
    pub line: usize,
    /// A column name, or `row` for the row as a whole.
    pub field: String,
    pub reason: String,
    /// The gRPC code name, e.g. `INVALID_ARGUMENT`, `NOT_FOUND`.
    pub code: String,
}

impl Rejection {
    fn local(line: usize, field: &str, reason: impl Into<String>) -> Self {
        Self {
            line,
            field: field.to_owned(),
            reason: reason.into(),
            code: LOCAL_REJECTION_CODE.to_owned(),
        }
    }
}

/// `line N: field: reason`.
impl fmt::Display for Rejection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(formatter, "line ?: {}: {}", self.field, self.reason)
        } else {
            write!(
                formatter,
                "line {}: {}: {}",
                self.line, self.field, self.reason
            )
        }
    }
}

/// A row that passed every local check, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub line: usize,
    pub observation: ObservationInput,
}

/// A file that may be sent: its good rows in file order and its rejected rows' problems.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedFile {
    /// How many columns the header has (5 to 8).
    pub columns: usize,
    /// Data rows read (blank lines not counted).
    pub rows_read: usize,
    /// The rows to send, in file order: the n-th is observation n of the ingest stream.
    pub rows: Vec<Row>,
    /// Every problem of every rejected row, in line order (a row may have several).
    pub rejections: Vec<Rejection>,
}

impl ParsedFile {
    /// Rows not sent because of a local problem.
    pub fn rejected_rows(&self) -> usize {
        let mut lines: Vec<usize> = self
            .rejections
            .iter()
            .map(|rejection| rejection.line)
            .collect();
        lines.dedup();
        lines.len()
    }

    /// The CSV line of observation `index` (from 0) of the ingest stream.
    pub fn line_of(&self, index: u64) -> Option<usize> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.rows.get(index))
            .map(|row| row.line)
    }

    /// The server's rejections, each named by the CSV line of the observation it indexes.
    pub fn map_server_rejections(&self, rejections: &[IngestRejection]) -> Vec<Rejection> {
        rejections
            .iter()
            .map(|rejection| match self.line_of(rejection.index) {
                Some(line) => Rejection {
                    line,
                    field: rejection.field.clone(),
                    reason: rejection.reason.clone(),
                    code: rejection.code.clone(),
                },
                None => Rejection {
                    line: 0,
                    field: rejection.field.clone(),
                    reason: format!(
                        "{} (the server named observation {}, but only {} were sent)",
                        rejection.reason,
                        rejection.index,
                        self.rows.len()
                    ),
                    code: rejection.code.clone(),
                },
            })
            .collect()
    }
}

/// Reads a whole file. `source` is written into every observation (where the figures came
/// from). Fails only for problems that refuse the whole file; row problems are in
/// [`ParsedFile::rejections`].
pub fn parse(bytes: &[u8], source: &str) -> Result<ParsedFile, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let (line, column) = position_of(bytes, error.valid_up_to());
        FileError::Encoding { line, column }
    })?;
    let text = text.strip_prefix(BOM).unwrap_or(text);
    let mut reader = Reader::new(text);

    let header = loop {
        match reader.next_record() {
            None => return Err(FileError::Empty),
            Some(record) if record.is_blank() => continue,
            Some(record) => break record,
        }
    };
    let columns = check_header(&header)?;

    let mut parsed = ParsedFile {
        columns,
        ..ParsedFile::default()
    };
    while let Some(record) = reader.next_record() {
        if record.is_blank() {
            continue;
        }
        parsed.rows_read += 1;
        let line = record.line;
        let fields = match record.fields {
            Ok(fields) => fields,
            Err(reason) => {
                parsed
                    .rejections
                    .push(Rejection::local(line, "row", reason));
                continue;
            }
        };
        match observation(line, &fields, columns, source) {
            Ok(observation) => parsed.rows.push(Row { line, observation }),
            Err(problems) => parsed.rejections.extend(problems),
        }
    }
    Ok(parsed)
}

/// The line (from 1) and byte of that line (from 1) at which `offset` falls, counting LF, CRLF
/// and CR as line ends like the reader does.
fn position_of(bytes: &[u8], offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut line_start = 0;
    let mut index = 0;
    while index < offset {
        match bytes[index] {
            b'\n' => {
                line += 1;
                line_start = index + 1;
            }
            b'\r' if bytes.get(index + 1) != Some(&b'\n') => {
                line += 1;
                line_start = index + 1;
            }
            _ => {}
        }
        index += 1;
    }
    (line, offset - line_start + 1)
}

/// The number of header columns, once every name is the expected one.
fn check_header(header: &Record) -> Result<usize, FileError> {
    let line = header.line;
    let names = header
        .fields
        .as_ref()
        .map_err(|reason| FileError::MalformedHeader {
            line,
            reason: reason.clone(),
        })?;
    for (index, expected) in COLUMNS.iter().enumerate() {
        match names.get(index) {
            Some(found) if found.trim().eq_ignore_ascii_case(expected) => {}
            Some(found) => {
                return Err(FileError::Header {
                    line,
                    column: index + 1,
                    expected: (*expected).to_owned(),
                    found: found.trim().to_owned(),
                });
            }
            None if index >= REQUIRED_COLUMNS => return Ok(index),
            None => {
                return Err(FileError::Header {
                    line,
                    column: index + 1,
                    expected: (*expected).to_owned(),
                    found: String::new(),
                });
            }
        }
    }
    match names.get(COLUMNS.len()) {
        None => Ok(COLUMNS.len()),
        Some(extra) => Err(FileError::Header {
            line,
            column: COLUMNS.len() + 1,
            expected: String::new(),
            found: extra.trim().to_owned(),
        }),
    }
}

/// One data row as an observation, or every problem found with it.
fn observation(
    line: usize,
    fields: &[String],
    columns: usize,
    source: &str,
) -> Result<ObservationInput, Vec<Rejection>> {
    if fields.len() != columns {
        return Err(vec![Rejection::local(
            line,
            "row",
            format!(
                "expected {columns} columns as in the header, found {}",
                fields.len()
            ),
        )]);
    }
    let field = |column: usize| fields.get(column).map(|text| text.trim()).unwrap_or("");
    let mut problems = Vec::new();

    let mut required = |column: usize| {
        let text = field(column);
        if text.is_empty() {
            problems.push(Rejection::local(line, COLUMNS[column], "is required"));
        }
        text.to_owned()
    };
    let ods_code = required(0);
    let measure_code = required(1);

    let date = |column: usize, problems: &mut Vec<Rejection>| -> Option<Date> {
        let text = field(column);
        if text.is_empty() {
            problems.push(Rejection::local(line, COLUMNS[column], "is required"));
            return None;
        }
        parse_date(text)
            .map_err(|reason| problems.push(Rejection::local(line, COLUMNS[column], reason)))
            .ok()
    };
    let period_start = date(2, &mut problems);
    let period_end = date(3, &mut problems);
    if let (Some(start), Some(end)) = (&period_start, &period_end)
        && (end.year, end.month, end.day) < (start.year, start.month, start.day)
    {
        problems.push(Rejection::local(
            line,
            "period_end",
            format!(
                "{} is before period_start {}",
                ics_proto::date::iso(end),
                ics_proto::date::iso(start)
            ),
        ));
    }

    let number = |column: usize, problems: &mut Vec<Rejection>| -> Option<f64> {
        let text = field(column);
        if text.is_empty() {
            return None;
        }
        match text.parse::<f64>() {
            Ok(number) if number.is_finite() => Some(number),
            Ok(_) => {
                problems.push(Rejection::local(
                    line,
                    COLUMNS[column],
                    format!("'{text}' is not a finite number"),
                ));
                None
            }
            Err(_) => {
                problems.push(Rejection::local(
                    line,
                    COLUMNS[column],
                    format!("'{text}' is not a number"),
                ));
                None
            }
        }
    };
    let value = number(4, &mut problems);
    let numerator = number(5, &mut problems);
    let denominator = number(6, &mut problems);
    let both_counts_given = !field(5).is_empty() && !field(6).is_empty();
    if field(4).is_empty() && !both_counts_given {
        problems.push(Rejection::local(
            line,
            "value",
            "is required unless numerator and denominator are both given",
        ));
    }
    if let (Some(numerator), Some(denominator)) = (numerator, denominator)
        && numerator > denominator
    {
        problems.push(Rejection::local(
            line,
            "numerator",
            format!("{numerator} is greater than the denominator {denominator}"),
        ));
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ObservationInput {
        measure_code,
        ods_code,
        value_stream_id: field(7).to_owned(),
        period_start,
        period_end,
        value,
        numerator,
        denominator,
        source: source.to_owned(),
    })
}

/// One CSV record: the line it starts on and its fields, or why it is not well-formed.
#[derive(Debug)]
struct Record {
    line: usize,
    fields: Result<Vec<String>, String>,
}

impl Record {
    /// A line with nothing on it but spaces (or one quoted empty field).
    fn is_blank(&self) -> bool {
        matches!(&self.fields, Ok(fields) if fields.len() == 1 && fields[0].trim().is_empty())
    }
}

/// An RFC 4180 reader that knows which physical line each record starts on.
struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    /// Consumes a line end if one is next (LF, CRLF or a lone CR); true if it did.
    fn line_end(&mut self) -> bool {
        match self.chars.peek() {
            Some('\n') => {
                self.chars.next();
            }
            Some('\r') => {
                self.chars.next();
                if self.chars.peek() == Some(&'\n') {
                    self.chars.next();
                }
            }
            _ => return false,
        }
        self.line += 1;
        true
    }

    /// After a malformed record: drop the rest of the physical line.
    fn skip_line(&mut self) {
        while self.chars.peek().is_some() {
            if self.line_end() {
                return;
            }
            self.chars.next();
        }
    }

    fn next_record(&mut self) -> Option<Record> {
        self.chars.peek()?;
        let line = self.line;
        let mut fields = Vec::new();
        loop {
            let field = if self.chars.peek() == Some(&'"') {
                self.chars.next();
                match self.quoted_field(line) {
                    Ok(field) => field,
                    Err(reason) => {
                        return Some(Record {
                            line,
                            fields: Err(reason),
                        });
                    }
                }
            } else {
                self.plain_field()
            };
            fields.push(field);
            match self.chars.peek() {
                Some(',') => {
                    self.chars.next();
                }
                None => break,
                Some(_) => {
                    if self.line_end() {
                        break;
                    }
                    let found = self.chars.peek().copied().unwrap_or(' ');
                    self.skip_line();
                    return Some(Record {
                        line,
                        fields: Err(format!(
                            "unexpected '{found}' after a closing quote (a quote inside a quoted \
                             field is written \"\")"
                        )),
                    });
                }
            }
        }
        Some(Record {
            line,
            fields: Ok(fields),
        })
    }

    /// Up to the next comma or line end. A quote inside an unquoted field is kept as it is.
    fn plain_field(&mut self) -> String {
        let mut field = String::new();
        while let Some(&character) = self.chars.peek() {
            if matches!(character, ',' | '\n' | '\r') {
                break;
            }
            field.push(character);
            self.chars.next();
        }
        field
    }

    /// After the opening quote, up to and including the closing one.
    fn quoted_field(&mut self, record_line: usize) -> Result<String, String> {
        let mut field = String::new();
        loop {
            match self.chars.next() {
                None => {
                    return Err(format!(
                        "a quoted field opened on line {record_line} is never closed"
                    ));
                }
                Some('"') => {
                    if self.chars.peek() == Some(&'"') {
                        self.chars.next();
                        field.push('"');
                    } else {
                        return Ok(field);
                    }
                }
                Some('\r') => {
                    field.push('\r');
                    if self.chars.peek() == Some(&'\n') {
                        self.chars.next();
                        field.push('\n');
                    }
                    self.line += 1;
                }
                Some('\n') => {
                    field.push('\n');
                    self.line += 1;
                }
                Some(character) => field.push(character),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "ods_code,measure_code,period_start,period_end,value,numerator,denominator\n";

    fn date(year: i32, month: u32, day: u32) -> Option<Date> {
        Some(Date { year, month, day })
    }

    fn parse_text(text: &str) -> ParsedFile {
        parse(text.as_bytes(), "test.csv").expect("the file is accepted")
    }

    fn lines_and_fields(parsed: &ParsedFile) -> Vec<(usize, &str)> {
        parsed
            .rejections
            .iter()
            .map(|rejection| (rejection.line, rejection.field.as_str()))
            .collect()
    }

    #[test]
    fn a_good_file_becomes_observations_in_file_order() {
        let parsed = parse_text(&format!(
            "{HEADER}RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,912,960\n\
             RXX,REFERENCE_COST_INDEX,2023-04-01,2024-03-31,103.5,,\n"
        ));
        assert_eq!(parsed.columns, 7);
        assert_eq!(parsed.rows_read, 2);
        assert!(parsed.rejections.is_empty(), "{:?}", parsed.rejections);
        assert_eq!(
            parsed.rows[0],
            Row {
                line: 2,
                observation: ObservationInput {
                    measure_code: "FFT_POSITIVE".to_owned(),
                    ods_code: "RXX".to_owned(),
                    value_stream_id: String::new(),
                    period_start: date(2024, 4, 1),
                    period_end: date(2024, 4, 30),
                    value: Some(0.95),
                    numerator: Some(912.0),
                    denominator: Some(960.0),
                    source: "test.csv".to_owned(),
                },
            }
        );
        assert_eq!(parsed.rows[1].line, 3);
        assert_eq!(parsed.rows[1].observation.value, Some(103.5));
        assert_eq!(parsed.rows[1].observation.numerator, None);
        assert_eq!(parsed.rows[1].observation.denominator, None);
    }

    #[test]
    fn optional_trailing_columns_may_be_present_or_left_off() {
        let with_stream = parse_text(
            "ods_code,measure_code,period_start,period_end,value,numerator,denominator,\
             value_stream_id\nRXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.9,,,vs-1\n",
        );
        assert_eq!(with_stream.columns, 8);
        assert_eq!(with_stream.rows[0].observation.value_stream_id, "vs-1");
        let short = parse_text(
            "ods_code,measure_code,period_start,period_end,value\n\
             RXX,STAFF_SURVEY_MORALE,2023-01-01,2023-12-31,5.9\n",
        );
        assert_eq!(short.columns, 5);
        assert_eq!(short.rows[0].observation.value, Some(5.9));
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        let parsed = parse_text(&format!(
            "\u{feff}{HEADER}RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,\n"
        ));
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(parsed.rows[0].observation.ods_code, "RXX");
        assert_eq!(parsed.rows[0].line, 2);
    }

    #[test]
    fn the_header_is_case_insensitive() {
        let parsed = parse_text(
            "ODS_Code,Measure_Code,Period_Start,Period_End,Value\n\
             RXX,STAFF_SURVEY_TEAM,2023-01-01,2023-12-31,6.8\n",
        );
        assert_eq!(parsed.rows.len(), 1);
    }

    #[test]
    fn a_wrong_header_refuses_the_file_naming_expected_and_found() {
        let error = parse(
            b"ods_code,measure,period_start,period_end,value\nRXX,M,2024-01-01,2024-01-31,1\n",
            "x",
        )
        .expect_err("wrong header");
        assert_eq!(
            error,
            FileError::Header {
                line: 1,
                column: 2,
                expected: "measure_code".to_owned(),
                found: "measure".to_owned(),
            }
        );
        let message = error.to_string();
        assert!(message.starts_with("line 1: header column 2:"), "{message}");
        assert!(
            message.contains("expected 'measure_code', found 'measure'"),
            "{message}"
        );

        let reordered = parse(
            b"ods_code,measure_code,period_end,period_start,value\n",
            "x",
        )
        .expect_err("order is fixed");
        assert!(matches!(reordered, FileError::Header { column: 3, .. }));

        let short = parse(b"ods_code,measure_code,period_start,period_end\n", "x")
            .expect_err("value is required");
        assert!(
            short
                .to_string()
                .contains("expected 'value', found nothing"),
            "{short}"
        );

        let long = parse(
            b"ods_code,measure_code,period_start,period_end,value,numerator,denominator,\
              value_stream_id,comment\n",
            "x",
        )
        .expect_err("no ninth column");
        assert!(
            long.to_string()
                .contains("header column 9: expected no more columns, found 'comment'"),
            "{long}"
        );
    }

    #[test]
    fn an_empty_file_is_refused() {
        assert_eq!(parse(b"", "x"), Err(FileError::Empty));
        assert_eq!(parse(b"\xef\xbb\xbf\n\n", "x"), Err(FileError::Empty));
    }

    #[test]
    fn invalid_utf8_on_line_3_refuses_the_file_naming_line_3() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,\n");
        bytes.extend_from_slice(b"R\xe9X,FFT_POSITIVE,2024-05-01,2024-05-31,0.94,,\n");
        bytes.extend_from_slice(b"RXX,FFT_POSITIVE,2024-06-01,2024-06-30,0.93,,\n");
        let error = parse(&bytes, "x").expect_err("latin-1 byte");
        assert_eq!(error, FileError::Encoding { line: 3, column: 2 });
        assert!(error.to_string().starts_with("line 3: "), "{error}");

        let crlf = b"ods_code\r\nx\r\n\xff";
        assert_eq!(
            parse(crlf, "x"),
            Err(FileError::Encoding { line: 3, column: 1 })
        );
    }

    #[test]
    fn mixed_rows_reject_the_bad_ones_by_line_and_field() {
        let parsed = parse_text(&format!(
            "{HEADER}\
             RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,\n\
             RXX,FFT_POSITIVE,2024-05-01,2024-05-31\n\
             RXX,FFT_POSITIVE,2024-13-01,2024-06-30,0.9,,\n\
             RXX,FFT_POSITIVE,01/07/2024,2024-07-31,0.9,,\n\
             RXX,FFT_POSITIVE,2024-08-01,2024-08-31,abc,,\n\
             RXX,FFT_POSITIVE,2024-09-01,2024-09-30,NaN,,\n\
             RXX,FFT_POSITIVE,2024-10-01,2024-10-31,inf,,\n\
             RXX,FFT_POSITIVE,2024-11-30,2024-11-01,0.9,,\n\
             RXX,FFT_POSITIVE,2024-12-01,2024-12-31,,970,960\n\
             ,FFT_POSITIVE,2025-01-01,2025-01-31,0.9,,\n\
             RXX,,2025-02-01,2025-02-28,0.9,,\n\
             RXX,FFT_POSITIVE,2025-03-01,2025-03-31,,,960\n\
             RXX,FFT_POSITIVE,,2025-04-30,0.9,,\n\
             RXX,FFT_POSITIVE,2025-05-01,2025-05-31,0.91,,\n"
        ));
        assert_eq!(parsed.rows_read, 14);
        assert_eq!(
            parsed.rows.iter().map(|row| row.line).collect::<Vec<_>>(),
            [2, 15]
        );
        assert_eq!(
            lines_and_fields(&parsed),
            [
                (3, "row"),
                (4, "period_start"),
                (5, "period_start"),
                (6, "value"),
                (7, "value"),
                (8, "value"),
                (9, "period_end"),
                (10, "numerator"),
                (11, "ods_code"),
                (12, "measure_code"),
                (13, "value"),
                (14, "period_start"),
            ]
        );
        assert_eq!(parsed.rejected_rows(), 12);
        let reasons: Vec<String> = parsed.rejections.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons[0],
            "line 3: row: expected 7 columns as in the header, found 4"
        );
        assert!(
            reasons[1].contains("not a real calendar date"),
            "{}",
            reasons[1]
        );
        assert!(reasons[2].contains("YYYY-MM-DD"), "{}", reasons[2]);
        assert_eq!(reasons[3], "line 6: value: 'abc' is not a number");
        assert_eq!(reasons[4], "line 7: value: 'NaN' is not a finite number");
        assert_eq!(reasons[5], "line 8: value: 'inf' is not a finite number");
        assert_eq!(
            reasons[6],
            "line 9: period_end: 2024-11-01 is before period_start 2024-11-30"
        );
        assert_eq!(
            reasons[7],
            "line 10: numerator: 970 is greater than the denominator 960"
        );
        assert_eq!(reasons[8], "line 11: ods_code: is required");
        assert!(
            parsed
                .rejections
                .iter()
                .all(|rejection| rejection.code == "INVALID_ARGUMENT")
        );
    }

    #[test]
    fn a_row_with_several_problems_lists_each_but_counts_once() {
        let parsed = parse_text(&format!("{HEADER}RXX,,2024-02-30,2024-01-31,x,,\n"));
        assert_eq!(
            lines_and_fields(&parsed),
            [(2, "measure_code"), (2, "period_start"), (2, "value")]
        );
        assert_eq!(parsed.rejected_rows(), 1);
        assert!(parsed.rows.is_empty());
    }

    #[test]
    fn quoted_fields_may_hold_commas_quotes_and_line_breaks() {
        let parsed = parse_text(
            "ods_code,measure_code,period_start,period_end,value,numerator,denominator,\
             value_stream_id\n\
             \"RXX\",\"FFT_POSITIVE\",2024-04-01,2024-04-30,\"0.95\",,,\"Discharge, \"\"home first\"\"\"\n\
             RXX,FFT_POSITIVE,2024-05-01,2024-05-31,0.9,,,\"two\nlines\"\n\
             RXX,FFT_POSITIVE,2024-06-01,2024-06-30,\"1,5\",,,\n\
             RXX,FFT_POSITIVE,2024-07-01,2024-07-31,0.9,,,\"vs\"x\n\
             RXX,FFT_POSITIVE,2024-08-01,2024-08-31,0.9,,,\n",
        );
        assert_eq!(
            parsed.rows[0].observation.value_stream_id,
            "Discharge, \"home first\""
        );
        assert_eq!(parsed.rows[0].observation.value, Some(0.95));
        assert_eq!(parsed.rows[1].line, 3);
        assert_eq!(parsed.rows[1].observation.value_stream_id, "two\nlines");
        // The line break inside the quotes moved every later row down one line.
        assert_eq!(lines_and_fields(&parsed), [(5, "value"), (6, "row")]);
        assert_eq!(parsed.rejections[0].reason, "'1,5' is not a number");
        assert!(
            parsed.rejections[1]
                .reason
                .contains("after a closing quote")
        );
        assert_eq!(parsed.rows[2].line, 7);
    }

    #[test]
    fn an_unclosed_quote_rejects_its_row() {
        let parsed = parse_text(&format!(
            "{HEADER}RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,\n\
             RXX,\"FFT_POSITIVE,2024-05-01,2024-05-31,0.9,,\n"
        ));
        assert_eq!(parsed.rows.len(), 1);
        assert_eq!(lines_and_fields(&parsed), [(3, "row")]);
        assert!(parsed.rejections[0].reason.contains("never closed"));
    }

    #[test]
    fn crlf_and_cr_line_endings_read_like_lf() {
        for ending in ["\r\n", "\r"] {
            let text = format!(
                "ods_code,measure_code,period_start,period_end,value,numerator,denominator{ending}\
                 RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,{ending}\
                 RXX,FFT_POSITIVE,2024-05-01,2024-05-31,bad,,{ending}\
                 RXX,FFT_POSITIVE,2024-06-01,2024-06-30,,900,960{ending}"
            );
            let parsed = parse_text(&text);
            assert_eq!(parsed.columns, 7, "{ending:?}");
            assert_eq!(
                parsed.rows.iter().map(|row| row.line).collect::<Vec<_>>(),
                [2, 4],
                "{ending:?}"
            );
            assert_eq!(parsed.rows[1].observation.denominator, Some(960.0));
            assert_eq!(lines_and_fields(&parsed), [(3, "value")], "{ending:?}");
            assert_eq!(parsed.rejections[0].reason, "'bad' is not a number");
        }
    }

    #[test]
    fn value_may_be_empty_when_numerator_and_denominator_are_given() {
        let parsed = parse_text(&format!(
            "{HEADER}RXX,STAFF_LEAVER_RATE,2024-04-01,2024-04-30,,42,3150\n\
             RXX,STAFF_LEAVER_RATE,2024-05-01,2024-05-31,,42,\n"
        ));
        assert_eq!(parsed.rows.len(), 1);
        let observation = &parsed.rows[0].observation;
        assert_eq!(observation.value, None);
        assert_eq!(observation.numerator, Some(42.0));
        assert_eq!(observation.denominator, Some(3150.0));
        assert_eq!(lines_and_fields(&parsed), [(3, "value")]);
    }

    #[test]
    fn blank_lines_are_skipped_but_keep_their_line_numbers() {
        let parsed = parse_text(&format!(
            "{HEADER}\nRXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,\n\n"
        ));
        assert_eq!(parsed.rows_read, 1);
        assert_eq!(parsed.rows[0].line, 3);
    }

    #[test]
    fn server_rejection_indexes_map_back_to_csv_lines() {
        // Lines 3 and 5 are rejected locally and never sent, so stream index 1 is line 4 and
        // index 2 is line 6.
        let parsed = parse_text(&format!(
            "{HEADER}\
             RXX,FFT_POSITIVE,2024-04-01,2024-04-30,0.95,,\n\
             RXX,FFT_POSITIVE,bad,2024-05-31,0.9,,\n\
             RXY,FFT_POSITIVE,2024-06-01,2024-06-30,0.9,,\n\
             RXX,FFT_POSITIVE,2024-07-01,2024-07-31,,,\n\
             RXX,NO_SUCH_MEASURE,2024-08-01,2024-08-31,0.9,,\n"
        ));
        assert_eq!(
            parsed.rows.iter().map(|row| row.line).collect::<Vec<_>>(),
            [2, 4, 6]
        );
        let server = [
            IngestRejection {
                index: 2,
                field: "measure_code".to_owned(),
                reason: "no measure NO_SUCH_MEASURE".to_owned(),
                code: "NOT_FOUND".to_owned(),
            },
            IngestRejection {
                index: 1,
                field: "ods_code".to_owned(),
                reason: "not a trust you may write for".to_owned(),
                code: "PERMISSION_DENIED".to_owned(),
            },
            IngestRejection {
                index: 7,
                field: "value".to_owned(),
                reason: "odd".to_owned(),
                code: "INVALID_ARGUMENT".to_owned(),
            },
        ];
        let mapped = parsed.map_server_rejections(&server);
        assert_eq!(
            mapped.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "line 6: measure_code: no measure NO_SUCH_MEASURE",
                "line 4: ods_code: not a trust you may write for",
                "line ?: value: odd (the server named observation 7, but only 3 were sent)",
            ]
        );
        assert_eq!(mapped[0].code, "NOT_FOUND");
        assert_eq!(parsed.line_of(0), Some(2));
        assert_eq!(parsed.line_of(3), None);
    }
}
