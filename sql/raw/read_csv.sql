-- An RFC 4180 CSV file of the MovieLens CSV family, every field as text.
-- Lines that cannot be parsed (bad encoding, wrong field count) are kept out
-- and recorded in the rejects table with their line number.
SELECT *
FROM read_csv(
    $path,
    header = true,
    all_varchar = true,
    delim = ',',
    quote = '"',
    escape = '"',
    encoding = 'utf-8',
    store_rejects = true,
    rejects_table = $rejects_table,
    rejects_scan = $rejects_scan
)
