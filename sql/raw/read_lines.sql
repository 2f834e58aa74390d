-- A header-less, unquoted MovieLens file (u.data, *.dat, u.item, ...), one row
-- per line, split on the layout's separator. Splitting here rather than in the
-- CSV reader means a wrong separator shows up as a wrong field count per line
-- (a data-quality finding) instead of a parser crash.
SELECT string_split(line, $delimiter) AS fields
FROM read_csv(
    $path,
    columns = {'line': 'VARCHAR'},
    delim = $no_delimiter,
    header = false,
    quote = '',
    escape = '',
    encoding = $encoding,
    auto_detect = false,
    skip = $skip
)
