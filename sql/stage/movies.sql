-- Typed movies (ml-1m and the CSV family): the year is taken from the title.
SELECT
    TRY_CAST(movie_id AS BIGINT) AS movie_id,
    trim(title) AS title,
    TRY_CAST(regexp_extract(trim(title), '\((\d{4})\)$', 1) AS INTEGER) AS year,
    genres
FROM raw_movies
