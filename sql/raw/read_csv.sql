-- An RFC 4180 CSV file (the CSV family, or a spec with a one-character
-- separator), every field as text. Lines that cannot be parsed (bad encoding,
-- wrong field count) are kept out and recorded in the rejects table with their
-- line number and text; validation quarantines or rejects them.
SELECT *
FROM read_csv(
    $path,
    header = $header,
    all_varchar = true,
    delim = $delimiter,
    quote = '"',
    escape = '"',
    encoding = $encoding,
    null_padding = false,
    strict_mode = true,
    store_rejects = true,
    rejects_table = $rejects_table,
    rejects_scan = $rejects_scan
)
