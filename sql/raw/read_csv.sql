-- An RFC 4180 CSV file (the CSV family, or a spec with a one-character
-- separator), every field as text, in the declared dialect (no sniffing, so
-- one malformed line cannot make the whole file unreadable). Lines that cannot
-- be parsed (bad encoding, wrong field count, stray quote) are kept out and
-- recorded in the rejects table with their line number and text; validation
-- quarantines them, or stops the run when there are too many.
SELECT *
FROM read_csv(
    $path,
    columns = $columns,
    header = $header,
    auto_detect = false,
    delim = $delimiter,
    quote = '"',
    escape = '"',
    encoding = $encoding,
    store_rejects = true,
    rejects_table = $rejects_table,
    rejects_scan = $rejects_scan
)
