-- Typed movies (every layout but ml-100k): the year is taken from the title;
-- the genre list is split on the layout's separator and the "no genres" token
-- dropped.
SELECT
    movie_key(movie_id) AS movie_id,
    trim(movie_id) AS external_id,
    trim(title) AS title,
    TRY_CAST(regexp_extract(trim(title), '\((\d{4})\)$', 1) AS INTEGER) AS year,
    list_filter(
        string_split(coalesce(genres, ''), $genre_separator),
        lambda g: g <> '' AND g IS DISTINCT FROM $no_genres
    ) AS genres
FROM stage_input
